"""Spark (a local Spark Thrift Server from .venv-spark's pyspark, Java 17 from Debian), reached as
a cluster's would be: ingestion's write-audit-publish (stage, contract suite, gate, publish) and
the phone-lookup step run on it through the warehouse Connection (engine.spark), then the whole
dbt project is built with `--target spark` (thrift). Every table ingestion and dbt write — raw,
quarantine, the ingestion audit, every model, the state dbt keeps (identity registry, segment
history), the phone lookup — equals row for row DuckDB's from the same landing files.

One publish is stopped halfway on Spark (its audit row removed, as a crash before that last
write leaves it) and the next stage undoes it and publishes it again: the tables still equal
DuckDB's, no row twice."""

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
from tests.e2e.python_steps import (
    assert_same_identity,
    assert_same_insight,
    identity_steps,
    insight_steps,
)
from tests.e2e.spark import SparkThriftServer
from tests.e2e.test_rule_conformance import _arrow, _cases, generated_rows, python_verdicts

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="spark")]
# dbt-spark and pyspark live in their own venv (`make spark`, requirements/spark.txt)
SPARK_BIN = REPO_ROOT / ".venv-spark" / "bin"
AS_OF = dt.date(2026, 11, 21)
CUSTOMERS, SEED = 300, 7
# tables dbt keeps across runs (created by its hooks, not models)
STATE_TABLES = [
    ("audit", "ingestion_audit"),
    ("audit", "ingestion_files"),
    ("audit", "identity_registry"),
    ("audit", "identity_merge_log"),
    ("audit", "segment_membership_history"),
    ("audit", "segment_stats"),
    ("reference", "phone_numbers"),  # written by its Python step on each engine
] + [(schema, c.id) for c in all_source_contracts() for schema in ("raw", "quarantine")]
# the clock's, not the data's: when each engine happened to write the row
CLOCK_COLUMNS = {"_loaded_at", "published_at"}
# a source whose publish is stopped halfway on Spark, then finished by the next night's stage
HALF_PUBLISHED = "email__engagement"


def _ingest(con, landing: Path) -> None:
    """Every source's landing files through write-audit-publish on `con`, as the nightly's
    staged asset, blocking check and raw asset do."""
    from orchestration.contracts.gx_suite import validate_table
    from orchestration.ingest.gate import evaluate_gate
    from orchestration.ingest.wap import batch_table, publish_batch, stage_batch

    for c in all_source_contracts():
        batch = stage_batch(con, c, landing, AS_OF, "spark-e2e")
        suite = validate_table(con, c, f"{batch_table(c)}__clean")
        assert evaluate_gate(c, batch, suite).passed, c.id
        assert publish_batch(con, c, batch, "spark-e2e", landing), c.id
        assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated, c.id


def _publish_again_after_a_stop_halfway(spark, landing: Path) -> None:
    """HALF_PUBLISHED's publish as a crash before its last write leaves it on Spark (rows in raw
    and quarantine, files in the cursor, no audit row); the next stage undoes it and the batch is
    published again, whole."""
    from orchestration.contracts.model import source_contract
    from orchestration.ingest.wap import publish_batch, stage_batch

    contract = source_contract(HALF_PUBLISHED)
    count = f"select count(*) from raw.{contract.id}"
    loaded = spark.execute(count).fetchone()[0]
    spark.execute("delete from audit.ingestion_audit where contract_id = ?", [contract.id])
    assert spark.rowcount == 1
    batch = stage_batch(spark, contract, landing, AS_OF, "spark-e2e")
    assert (batch.loaded, batch.deduplicated) == (loaded, 0), "the stopped publish was undone"
    assert publish_batch(spark, contract, batch, "spark-e2e", landing)
    assert spark.execute(count).fetchone()[0] == loaded


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
def server(tmp_path_factory, monkeypatch_module):
    """A local Spark Thrift Server for the module, starting (not yet ready) when returned; its
    address and warehouse folder in the env, as a deployment's would be."""
    # a few hundred rows a table: one task per shuffle, not four (each task is pure overhead)
    monkeypatch_module.setenv("C360_SPARK_SHUFFLE_PARTITIONS", "1")
    spark = SparkThriftServer(tmp_path_factory.mktemp("spark_server")).start(wait=False)
    for name, value in spark.env().items():
        monkeypatch_module.setenv(name, value)
    yield spark
    spark.stop()


@pytest.fixture(scope="module")
def builds(tmp_path_factory, monkeypatch_module, server) -> dict[str, Path]:
    """The same landing files ingested on DuckDB and on a local Spark Thrift Server, and the
    phone lookup written, by the same steps on each engine; then `dbt build` of the whole
    project on Spark and on DuckDB side by side. Returns the build folders and the DuckDB
    warehouse."""
    from orchestration.identity import phones

    assert (SPARK_BIN / "dbt").exists(), "no .venv-spark: run `make spark` (make test does)"
    from demo.generator import generate
    from orchestration.warehouse import spark_session, warehouse

    root = tmp_path_factory.mktemp("spark")
    monkeypatch_module.setenv("C360_DUCKDB_TEMP_DIR", str(root / "tmp"))
    if True:
        landing = root / "landing"
        generate(CUSTOMERS, SEED, AS_OF, landing, root / "truth", progress=None)
        wh_path = root / "warehouse.duckdb"
        with warehouse(wh_path) as wh:  # while the server starts
            _ingest(wh, landing)
            phones.refresh(wh, AS_OF.isoformat())
        server.wait_ready()
        with spark_session() as spark:  # the pipeline's own opener, with the schemas
            # a warehouse without raw tables yet: nothing to parse, the lookup table is created
            assert phones.refresh(spark, AS_OF.isoformat())["total_texts"] == 0
            _ingest(spark, landing)
            _publish_again_after_a_stop_halfway(spark, landing)
            phones.refresh(spark, AS_OF.isoformat())
        env = os.environ | {
            "C360_WAREHOUSE": str(wh_path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }  # fmt: skip
        procs = {t: _dbt_build(t, env, root / t) for t in ("spark", "duckdb")}
        wait_for_builds(procs, root, timeout=600)
    return {"spark": root / "spark", "duckdb": root / "duckdb", "warehouse": wh_path}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_dbt_build_on_spark_passes_every_model_and_test(builds):
    assert_every_node_built(builds["spark"], builds["duckdb"])


def _spark_rows(duck: duckdb.DuckDBPyConnection, schema: str, table: str, cols: list[str]):
    """A Spark table's rows, read from its Parquet files."""
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
                ).fetchall() if c not in CLOCK_COLUMNS
            ]  # fmt: skip
            assert cols, f"{schema}.{table} missing on DuckDB"
            select = ", ".join(f'"{c}"' for c in cols)
            on_duck = duck.execute(f"select {select} from {schema}.{table}").fetchall()
            on_spark = _spark_rows(duck, schema, table, cols)
            problems += row_differences(f"{schema}.{table}", cols, on_spark, on_duck, "Spark")
            compared += len(on_duck)
    assert not problems
    assert compared > 10 * CUSTOMERS


def test_identity_steps_on_spark_give_duckdbs_answers(builds):
    """Identity's Python steps between the two dbt builds, on each engine's identity tables:
    the model trained without labels, the probabilistic links scored with it, a second night
    re-using the pairs (tests/e2e/python_steps.py)."""
    from orchestration.warehouse import spark_session

    with spark_session() as spark, duckdb.connect(str(builds["warehouse"])) as duck:
        out = {name: identity_steps(con, AS_OF) for name, con in
               (("duckdb", duck), ("spark", spark))}  # fmt: skip
    assert_same_identity(out["spark"], out["duckdb"], CUSTOMERS)


def test_python_steps_after_dbt_give_duckdbs_answers_on_spark(builds):
    """The steps after dbt on each engine's marts: graph health, a traits mart, CLV, lead
    score, send time, segment value, next best action, the report's data, the insight view and
    campaign lift (tests/e2e/python_steps.py)."""
    from orchestration.warehouse import spark_session

    with spark_session() as spark, duckdb.connect(str(builds["warehouse"])) as duck:
        ids = sorted(
            r[0] for r in duck.execute("select customer_id from marts.customer_360").fetchall()
        )
        runs = {name: insight_steps(con, ids, AS_OF, "spark-e2e") for name, con in
                (("duckdb", duck), ("spark", spark))}  # fmt: skip
    assert_same_insight(runs["spark"], runs["duckdb"], CUSTOMERS)


@pytest.fixture(scope="module")
def rule_cases(tmp_path_factory):
    """The rule conformance test's rows: planted defects and clean rows per contract."""
    return generated_rows(tmp_path_factory.mktemp("conformance"))


@pytest.mark.parametrize("contract", all_source_contracts(), ids=lambda c: c.id)
def test_spark_gives_every_contract_rule_the_verdicts_of_python_and_duckdb(
    contract, rule_cases, server
):
    """The rule conformance of tests/e2e/test_rule_conformance.py on Spark: planted defects,
    clean rows and every rule's edge values (Unicode spaces, line breaks, leap days, integer
    bounds, regex metacharacters …) get Python's verdicts, and the values every type rule accepts
    are typed to DuckDB's values."""
    from orchestration.contracts.rules_sql import (
        failed_rules_sql,
        quote_ident,
        trimmed_columns_sql,
        typed_select_sql,
    )
    from orchestration.warehouse import spark_session

    cases = _cases(contract, rule_cases[contract.id])
    rows = [r for _, r in cases]
    expected = python_verdicts(contract, rows)
    server.wait_ready()
    with spark_session(read_only=True) as spark:
        spark.register("batch", _arrow(contract, rows))
        got = spark.execute(
            f"select {failed_rules_sql(contract, 'error', 'spark')}, "
            f"{failed_rules_sql(contract, 'warning', 'spark')} from (select *, "
            f"{trimmed_columns_sql(contract, 'spark')} from batch) t order by _n"
        ).fetchall()
        verdicts = [(list(e), list(w)) for e, w in got]
        differ = [
            f"{label}: spark={s} python={p}"
            for (label, _), s, p in zip(cases, verdicts, expected, strict=True)
            if s != p
        ]
        assert not differ, f"{len(differ)} of {len(rows)} rows differ:\n" + "\n".join(differ[:40])
        loadable = [
            i for i, (e, _) in enumerate(expected) if not any(r.endswith(".type") for r in e)
        ]
        ids = ", ".join(str(i) for i in loadable)
        # timestamps as microseconds since the epoch: an accepted value may lie before year 1
        # in UTC (0001-01-01T00:00+15:59), which no Python datetime holds
        columns = ", ".join(
            f"date_diff('microsecond', timestamp '1970-01-01', {quote_ident(f.name)})"
            if f.logical_type == "timestamp"
            else quote_ident(f.name)
            for f in contract.fields
        )
        typed = f"select _n, {{}} from batch where _n in ({ids}) order by _n"
        on_spark = spark.execute(
            f"select _n, {columns} from ({typed.format(typed_select_sql(contract, 'spark'))}) t "
            "order by _n"
        ).fetchall()
    with duckdb.connect() as duck:
        duck.register("batch", _arrow(contract, rows))
        duck.execute("set TimeZone = 'UTC'")
        on_duck = duck.execute(
            f"select _n, {columns} from ({typed.format(typed_select_sql(contract))}) t order by _n"
        ).fetchall()
    names = ["_n", *[f.name for f in contract.fields]]
    assert len(on_spark) == len(on_duck) == len(loadable)
    assert not row_differences(contract.id, names, on_spark, on_duck, "Spark")
