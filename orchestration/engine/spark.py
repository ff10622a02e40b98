"""Spark as the warehouse: a Spark Thrift Server (HiveServer2 protocol), which dbt's spark target
(`method: thrift`) and the Python side's `SparkConnection` both talk to, as they would to a
cluster's. One server owns the catalog; a local one keeps its Parquet tables under
C360_SPARK_WAREHOUSE with an embedded Derby metastore beside them.

`server_command` starts that local server from the pyspark of .venv-spark (`make spark`); the
session settings (`SESSION_SETTINGS`) are the ones dbt's profile passes too, so every client
reads timestamps and literals alike.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.engine.dbapi import DbApiConnection
from orchestration.paths import REPO_ROOT, c360_home

DIALECT = "spark"
WAREHOUSE_ENV = "C360_SPARK_WAREHOUSE"
# Runtime settings of every session (dbt_project/profiles.yml passes the same): the project's
# `timestamp` is a wall-clock time in UTC without a zone, as in DuckDB and Postgres.
SESSION_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
}


def spark_warehouse() -> Path:
    """Folder of the local Spark warehouse: C360_SPARK_WAREHOUSE, default <C360_HOME>/spark."""
    return Path(os.environ.get(WAREHOUSE_ENV) or c360_home() / "spark").resolve()


def server_settings(home: Path | None = None) -> dict[str, str]:
    """The local Thrift Server's settings: where tables and the metastore live (`home`, default
    spark_warehouse()), its memory and parallelism, then the session settings."""
    home = home or spark_warehouse()
    return {
        "spark.sql.warehouse.dir": f"{home}/tables",
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={home}/metastore_db;create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home}",
        "spark.driver.memory": os.environ.get("C360_SPARK_DRIVER_MEMORY", "2g"),
        "spark.sql.shuffle.partitions": os.environ.get("C360_SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.ui.enabled": "false",
        **SESSION_SETTINGS,
    }


def server_command(port: int, host: str = "127.0.0.1", home: Path | None = None) -> list[str]:
    """The command that runs a local Spark Thrift Server in the foreground on host:port, its
    warehouse in `home` (default spark_warehouse())."""
    spark_home = next(
        (REPO_ROOT / ".venv-spark" / "lib").glob("python3*/site-packages/pyspark"), None
    )
    if spark_home is None:
        raise FileNotFoundError("no pyspark in .venv-spark: run `make spark`")
    command = [
        str(spark_home / "bin" / "spark-submit"),
        "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
        "--master", os.environ.get("C360_SPARK_MASTER", "local[2]"),
    ]  # fmt: skip
    for name, value in server_settings(home).items():
        command += ["--conf", f"{name}={value}"]
    return [
        *command,
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "--hiveconf", f"hive.server2.thrift.bind.host={host}",
        "spark-internal",
    ]  # fmt: skip


def table_files(schema: str, table: str) -> Path:
    """Folder of a managed table's Parquet files in the local warehouse."""
    return spark_warehouse() / "tables" / f"{schema}.db" / table


class SparkConnection(DbApiConnection):
    """DuckDB's connection methods the Python steps use, on a Spark Thrift Server session.

    Statements are translated from DuckDB's dialect (engine.transpile). Arrow rows handed to
    SQL (`register`) are written as a Parquet file to the warehouse's staging folder and read
    as a temporary view: the server must see that folder (a local server does; a cluster reads
    it from the object storage the folder names)."""

    dialect = DIALECT

    def __init__(self, con: Any, staging: Path) -> None:
        super().__init__(con)
        self._staging = staging
        self._registered: dict[str, Path] = {}

    @classmethod
    def connect(
        cls, host: str, port: int, user: str = "c360", staging: Path | None = None
    ) -> SparkConnection:
        """Open a session on the Thrift Server at host:port."""
        from pyhive import hive

        con = hive.connect(host=host, port=port, username=user, configuration=SESSION_SETTINGS)
        return cls(con, staging or spark_warehouse() / "staging")

    def to_arrow_table(self) -> pa.Table:
        cursor = self._last()
        names = [c[0] for c in cursor.description or ()]
        rows = cursor.fetchall()
        return pa.table({name: pa.array([r[i] for r in rows]) for i, name in enumerate(names)})

    def df(self) -> pd.DataFrame:
        return self.to_arrow_table().to_pandas(date_as_object=False)

    def register(self, view_name: str, python_object: pa.Table | pd.DataFrame) -> SparkConnection:
        """A temporary view `view_name` of an Arrow table's or a pandas frame's rows."""
        table = (
            pa.Table.from_pandas(python_object, preserve_index=False)
            if isinstance(python_object, pd.DataFrame)
            else python_object
        )
        self._staging.mkdir(parents=True, exist_ok=True)
        # a name starting with `_` or `.` is a hidden file to Spark
        path = self._staging / f"c360-{view_name}-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, path)
        self.unregister(view_name)
        self._con.cursor().execute(
            f"create temporary view {view_name} using parquet options (path '{path}')"
        )
        self._registered[view_name] = path
        return self

    def unregister(self, view_name: str) -> SparkConnection:
        self._con.cursor().execute(f"drop view if exists {view_name}")
        path = self._registered.pop(view_name, None)
        if path is not None:
            path.unlink(missing_ok=True)
        return self

    def table_names(self, schema: str) -> list[str]:
        """The tables of `schema`, none when it does not exist (Spark has no
        information_schema, and `show tables in` fails on a missing schema)."""
        cursor = self._con.cursor()
        cursor.execute("show schemas")
        if schema.lower() not in {row[0].lower() for row in cursor.fetchall()}:
            return []
        cursor.execute(f"show tables in {schema}")
        return [row[1] for row in cursor.fetchall() if not row[2]]  # not temporary views

    def close(self) -> None:
        for name in list(self._registered):
            self.unregister(name)
        super().close()


if __name__ == "__main__":
    # `python -m orchestration.engine.spark [port]`: a local Thrift Server in the foreground
    import sys

    argv = server_command(int(sys.argv[1]) if len(sys.argv) > 1 else 10000)
    os.execv(argv[0], argv)
