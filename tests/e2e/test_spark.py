"""Local Spark (pyspark from the lock, Java 17 from Debian; dbt-spark's session method, so Spark
runs inside dbt's process): the whole dbt project built with `--target spark` on generated data
ingested by the real write-audit-publish path, and every table it writes, the state dbt keeps
(identity registry, segment history) included, equal row for row to DuckDB's build of the same
raw rows.

The Python steps do not run on Spark yet: ingestion and the phone lookup run on DuckDB and their
tables are copied to Spark as Parquet (docs/scale.md, "Where it stands")."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from orchestration.contracts.model import all_source_contracts
from orchestration.paths import REPO_ROOT, dbt_project_dir

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
    """raw and reference tables ingested once, copied to Spark as Parquet; then `dbt build` of
    the whole project on Spark and, on a copy of the same warehouse, on DuckDB (side by side:
    separate processes and warehouses). Returns the build folders, the DuckDB warehouse and the
    Spark warehouse."""
    assert (SPARK_BIN / "dbt").exists(), "no .venv-spark: run `make spark` (make test does)"
    root = tmp_path_factory.mktemp("spark")
    monkeypatch_module.setenv("C360_DUCKDB_TEMP_DIR", str(root / "tmp"))
    monkeypatch_module.setenv("C360_SPARK_WAREHOUSE", str(root / "spark_warehouse"))
    wh_path = _ingest(root)
    parquet = root / "parquet"
    parquet.mkdir()
    with duckdb.connect(str(wh_path), read_only=True) as wh:
        tables = wh.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('raw', 'reference') and table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            wh.execute(f"copy {schema}.{table} to '{parquet}/{schema}.{table}.parquet'")
    loaded = subprocess.run(
        [str(SPARK_BIN / "python"), "-m", "tests.e2e.spark_tables", str(parquet)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-4000:]
    assert len(loaded.stdout.split()) == len(tables) > len(all_source_contracts())
    env = os.environ | {
        "C360_WAREHOUSE": str(wh_path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }  # fmt: skip
    procs = {t: _dbt_build(t, env, root / t) for t in ("spark", "duckdb")}
    try:
        codes = {t: proc.wait(timeout=600) for t, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for target, rc in codes.items():
        log = (root / target / "stdout.txt").read_text()
        assert rc == 0, f"dbt build --target {target} failed:\n{log[-6000:]}"
    return {"spark": root / "spark", "duckdb": root / "duckdb", "warehouse": wh_path}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_dbt_build_on_spark_passes_every_model_and_test(builds):
    results = json.loads((builds["spark"] / "target" / "run_results.json").read_text())["results"]
    bad = [
        (r["unique_id"], r["status"])
        for r in results
        if r["status"] not in ("success", "pass")
        and not (r["unique_id"].startswith("exposure.") and r["status"] == "no-op")
    ]
    assert not bad
    ran = {r["unique_id"] for r in results}
    assert sum(uid.startswith("test.") for uid in ran) > 5
    assert any(uid.endswith(".customer_360") for uid in ran)
    duck = json.loads((builds["duckdb"] / "target" / "run_results.json").read_text())["results"]
    assert ran == {r["unique_id"] for r in duck}  # the same graph on both engines


def _spark_rows(duck: duckdb.DuckDBPyConnection, schema: str, table: str, cols: list[str]):
    """A Spark table's rows, read from its Parquet files (no second JVM on the metastore)."""
    from orchestration.engine.spark import table_files

    files = sorted(table_files(schema, table).glob("*.parquet"))
    assert files, f"{schema}.{table}: Spark wrote no Parquet files"
    select = ", ".join(f'"{c}"' for c in cols)
    paths = ", ".join(f"'{f}'" for f in files)
    return duck.execute(f"select {select} from read_parquet([{paths}])").fetchall()


def _differences(name: str, cols: list[str], on_spark: list[tuple], on_duck: list[tuple]):
    """How two engines' rows of one table differ: row counts, every non-numeric column exactly,
    numeric columns sorted to a cent (engines round a half-cent tie either way)."""
    if len(on_spark) != len(on_duck):
        return [f"{name}: {len(on_spark)} rows on Spark vs {len(on_duck)} on DuckDB"]
    numeric = {
        i
        for i in range(len(cols))
        if any(isinstance(r[i], (float, Decimal)) for r in on_spark + on_duck)
    }
    exact = [i for i in range(len(cols)) if i not in numeric]
    problems = []
    if Counter(tuple(r[i] for i in exact) for r in on_spark) != Counter(
        tuple(r[i] for i in exact) for r in on_duck
    ):
        differ = [
            cols[i]
            for i in exact
            if Counter(r[i] for r in on_spark) != Counter(r[i] for r in on_duck)
        ]
        problems.append(f"{name}: rows differ (columns: {differ or 'combined'})")
    for i in sorted(numeric):
        a = sorted((r[i] is not None, float(r[i] or 0)) for r in on_spark)
        b = sorted((r[i] is not None, float(r[i] or 0)) for r in on_duck)
        if [x[0] for x in a] != [y[0] for y in b] or any(
            abs(x[1] - y[1]) > 0.0101 for x, y in zip(a, b, strict=True)
        ):
            problems.append(f"{name}.{cols[i]}: values differ")
    return problems


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
            problems += _differences(f"{schema}.{table}", cols, on_spark, on_duck)
            compared += len(on_duck)
    assert not problems
    assert compared > 10 * CUSTOMERS
