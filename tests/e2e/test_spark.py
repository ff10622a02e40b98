"""Spark (a local Spark Thrift Server from .venv-spark's pyspark, Java 17 from Debian), reached as
a cluster's would be: the phone-lookup step runs on it through the warehouse Connection
(engine.spark), then the whole dbt project is built with `--target spark` (thrift), and every
table it writes, the state dbt keeps (identity registry, segment history) and the phone lookup
included, equals row for row DuckDB's of the same raw rows.

Ingestion does not run on Spark yet: the raw tables are ingested by the real write-audit-publish
path on DuckDB and copied through the Connection (docs/scale.md, "Where it stands")."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.contracts.model import all_source_contracts
from orchestration.paths import REPO_ROOT, dbt_project_dir
from tests.e2e.compare import row_differences
from tests.e2e.dbt_builds import assert_every_node_built, wait_for_builds
from tests.e2e.spark import SparkThriftServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="spark")]
# dbt-spark and pyspark live in their own venv (`make spark`, requirements/spark.txt)
SPARK_BIN = REPO_ROOT / ".venv-spark" / "bin"
AS_OF = dt.date(2026, 11, 21)
CUSTOMERS, SEED = 300, 7
# tables dbt keeps across runs (created by its hooks, not models)
STATE_TABLES = [
    ("audit", "identity_registry"),
    ("audit", "identity_merge_log"),
    ("audit", "segment_membership_history"),
    ("audit", "segment_stats"),
    ("reference", "phone_numbers"),  # written by its Python step on each engine
]


def _ingest(root: Path) -> Path:
    """The generated files through write-audit-publish into a DuckDB warehouse, with the phone
    lookup; returns the warehouse path."""
    from demo.generator import generate
    from orchestration.contracts.gx_suite import validate_table
    from orchestration.identity import phones
    from orchestration.ingest.gate import evaluate_gate
    from orchestration.ingest.wap import batch_table, publish_batch, stage_batch
    from orchestration.warehouse import warehouse

    landing = root / "landing"
    generate(CUSTOMERS, SEED, AS_OF, landing, root / "truth", progress=None)
    wh_path = root / "warehouse.duckdb"
    with warehouse(wh_path) as wh:
        for c in all_source_contracts():
            batch = stage_batch(wh, c, landing, AS_OF, "spark-e2e")
            suite = validate_table(wh, c, f"{batch_table(c)}__clean")
            assert evaluate_gate(c, batch, suite).passed, c.id
            assert publish_batch(wh, c, batch, "spark-e2e", landing), c.id
        phones.refresh(wh, AS_OF.isoformat())
    return wh_path


def _copy_raw(wh_path: Path, spark) -> int:
    """DuckDB's raw tables into Spark through the warehouse Connection; returns how many."""
    with duckdb.connect(str(wh_path), read_only=True) as wh:
        tables = wh.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'"
        ).fetchall()
        spark.execute("create schema if not exists raw")
        for (table,) in tables:
            spark.register("_raw_rows", wh.execute(f"select * from raw.{table}").to_arrow_table())
            spark.execute(f"drop table if exists raw.{table}")
            spark.execute(f"create table raw.{table} as select * from _raw_rows")
            spark.unregister("_raw_rows")
    return len(tables)


def _dbt_build(target: str, env: dict[str, str], out: Path) -> subprocess.Popen:
    out.mkdir(parents=True)
    with (out / "stdout.txt").open("w") as log:
        return subprocess.Popen(
            [str((SPARK_BIN if target == "spark" else Path(sys.executable).parent) / "dbt"),
             "build", "--target", target,
             "--profiles-dir", ".", "--exclude-resource-type", "unit_test",
             "--vars", f"{{as_of: '{AS_OF}', run_id: 'spark-e2e'}}",
             "--target-path", str(out / "target"), "--log-path", str(out / "logs")],
            cwd=dbt_project_dir(), env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture(scope="module")
def builds(tmp_path_factory, monkeypatch_module) -> dict[str, Path]:
    """Raw tables ingested once on DuckDB and copied to a local Spark Thrift Server; the phone
    lookup written on each engine by its own step; then `dbt build` of the whole project on
    Spark and on DuckDB side by side. Returns the build folders and the DuckDB warehouse."""
    from orchestration.identity import phones

    assert (SPARK_BIN / "dbt").exists(), "no .venv-spark: run `make spark` (make test does)"
    root = tmp_path_factory.mktemp("spark")
    monkeypatch_module.setenv("C360_DUCKDB_TEMP_DIR", str(root / "tmp"))
    # a few hundred rows a table: one task per shuffle, not four (each task is pure overhead)
    monkeypatch_module.setenv("C360_SPARK_SHUFFLE_PARTITIONS", "1")
    server = SparkThriftServer(root / "spark_warehouse").start(wait=False)
    try:
        for name, value in server.env().items():
            monkeypatch_module.setenv(name, value)
        wh_path = _ingest(root)  # while the server starts
        server.wait_ready()
        with server.connect() as spark:
            # a warehouse without raw tables yet: nothing to parse, the lookup table is created
            assert phones.refresh(spark, AS_OF.isoformat())["total_texts"] == 0
            assert _copy_raw(wh_path, spark) == len(all_source_contracts())
            phones.refresh(spark, AS_OF.isoformat())
        env = os.environ | {
            "C360_WAREHOUSE": str(wh_path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }  # fmt: skip
        procs = {t: _dbt_build(t, env, root / t) for t in ("spark", "duckdb")}
        wait_for_builds(procs, root, timeout=600)
    finally:
        server.stop()
    return {"spark": root / "spark", "duckdb": root / "duckdb", "warehouse": wh_path}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_dbt_build_on_spark_passes_every_model_and_test(builds):
    assert_every_node_built(builds["spark"], builds["duckdb"])


def _spark_rows(duck: duckdb.DuckDBPyConnection, schema: str, table: str, cols: list[str]):
    """A Spark table's rows, read from its Parquet files (the server is stopped by then)."""
    from orchestration.engine.spark import table_files

    files = sorted(table_files(schema, table).glob("*.parquet"))
    assert files, f"{schema}.{table}: Spark wrote no Parquet files"
    select = ", ".join(f'"{c}"' for c in cols)
    paths = ", ".join(f"'{f}'" for f in files)
    return duck.execute(f"select {select} from read_parquet([{paths}])").fetchall()


def test_every_table_is_the_same_on_spark_and_duckdb(builds):
    """Same raw rows in, same rows out of every table model and every state table: customer ids,
    identity graph, traits, segments with their holdouts (the md5 bucket), history."""
    manifest = json.loads((builds["spark"] / "target" / "manifest.json").read_text())
    tables = sorted(
        (n["schema"], n["alias"])
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"]["materialized"] in ("table", "incremental")
    )
    assert ("marts", "customer_360") in tables and ("marts", "segment_membership") in tables
    problems, compared = [], 0
    with duckdb.connect(str(builds["warehouse"]), read_only=True) as duck:
        for schema, table in tables + STATE_TABLES:
            cols = [
                c for (c,) in duck.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
            ]  # fmt: skip
            assert cols, f"{schema}.{table} missing on DuckDB"
            select = ", ".join(f'"{c}"' for c in cols)
            on_duck = duck.execute(f"select {select} from {schema}.{table}").fetchall()
            on_spark = _spark_rows(duck, schema, table, cols)
            problems += row_differences(f"{schema}.{table}", cols, on_spark, on_duck, "Spark")
            compared += len(on_duck)
    assert not problems
    assert compared > 10 * CUSTOMERS
