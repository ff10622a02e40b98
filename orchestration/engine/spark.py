"""Local Spark for the `spark` dbt target (dbt_project/profiles.yml): the same session settings,
so a Python process opens the warehouse dbt built (its Parquet tables under C360_SPARK_WAREHOUSE
and their Derby metastore beside them).

The Derby metastore is embedded: one JVM at a time may open it, so a process that opened a session
must exit (not only stop the session) before dbt or another process opens it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration.paths import c360_home

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

WAREHOUSE_ENV = "C360_SPARK_WAREHOUSE"


def spark_warehouse() -> Path:
    """Folder of the local Spark warehouse: C360_SPARK_WAREHOUSE, default <C360_HOME>/spark."""
    return Path(os.environ.get(WAREHOUSE_ENV) or c360_home() / "spark").resolve()


def session_settings() -> dict[str, str]:
    """The Spark settings of the profile's spark target (server_side_parameters), by name."""
    home = spark_warehouse()
    return {
        "spark.master": os.environ.get("C360_SPARK_MASTER", "local[2]"),
        "spark.sql.warehouse.dir": f"{home}/tables",
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={home}/metastore_db;create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
        "spark.driver.memory": os.environ.get("C360_SPARK_DRIVER_MEMORY", "2g"),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.timestampType": "TIMESTAMP_NTZ",
        "spark.sql.parser.escapedStringLiterals": "true",
        "spark.sql.shuffle.partitions": os.environ.get("C360_SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.ui.enabled": "false",
    }


def spark_session() -> SparkSession:
    """A session on the local Spark warehouse, with the Hive catalog dbt's session method uses."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for name, value in session_settings().items():
        builder = builder.config(name, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def table_files(schema: str, table: str) -> Path:
    """Folder of a managed table's Parquet files (what DuckDB's read_parquet can read)."""
    return spark_warehouse() / "tables" / f"{schema}.db" / table
