"""Register Parquet files as tables of the local Spark warehouse (orchestration/engine/spark.py),
in a process of its own: the embedded metastore admits one JVM, and dbt's is next.

`python -m tests.e2e.spark_tables <folder>` creates <schema>.<table> from each
<folder>/<schema>.<table>.parquet, replacing a table of that name."""

from __future__ import annotations

import sys
from pathlib import Path

from orchestration.engine.spark import spark_session  # run by .venv-spark/bin/python


def register(folder: Path) -> list[str]:
    """Create one managed table per Parquet file of `folder`; returns their names."""
    spark = spark_session()
    names = []
    for path in sorted(folder.glob("*.parquet")):
        name = path.name.removesuffix(".parquet")
        spark.sql(f"create database if not exists {name.split('.')[0]}")
        spark.sql(f"drop table if exists {name}")
        spark.sql(f"create table {name} using parquet as select * from parquet.`{path}`")
        names.append(name)
    spark.stop()
    return names


if __name__ == "__main__":
    print("\n".join(register(Path(sys.argv[1]))))
