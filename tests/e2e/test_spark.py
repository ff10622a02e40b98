"""Spark (a local Spark Thrift Server from .venv-spark's pyspark, Java 17 from Debian), reached as
a cluster's would be: the whole nightly job runs in Dagster with C360_DBT_TARGET=spark —
ingestion's write-audit-publish with its blocking gates, the phone lookup, erasure, dbt (from
.venv-spark, `method: thrift`), identity's training and probabilistic links, the insight steps,
activation with its contact history — and every table it writes equals, row for row, the table
the same nightly writes on DuckDB from the same landing files (run stamps aside).

The read commands of the CLI (summary, identity explain, segments preview, sync --dry-run) print
from the Spark warehouse what they print from DuckDB's. Then one publish is stopped halfway on
Spark (its audit row removed, as a crash before that last write leaves it) and the next stage
undoes it and publishes it again, whole and once. And every contract rule's verdicts and typed
values on Spark equal Python's and DuckDB's."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from orchestration.contracts.model import all_source_contracts
from orchestration.engine.spark_server import SparkThriftServer
from orchestration.paths import REPO_ROOT
from tests.e2e.compare import row_differences
from tests.e2e.nightly_job import (
    RUN_STAMPS,
    night_settings,
    run_nightly,
    use_engine,
    whole_nightly,
)
from tests.e2e.test_rule_conformance import _arrow, _cases, generated_rows, python_verdicts

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="spark")]
# dbt-spark and pyspark live in their own venv (`make spark`, requirements/spark.txt)
SPARK_DBT = REPO_ROOT / ".venv-spark" / "bin" / "dbt"
AS_OF = dt.date(2026, 11, 21)
CUSTOMERS, SEED = 300, 7
# the warehouse's schemas, compared table by table
SCHEMAS = ("raw", "quarantine", "reference", "staging", "intermediate", "marts", "activation",
           "audit")  # fmt: skip
# DuckDB's alone: the fingerprints of the `reusable_table` materialization, which keeps a table
# on DuckDB only (dbt_project/macros/reusable_table.sql; Spark rebuilds every table), and the
# row counts the incremental mirrors note (macros/incremental_mirror.sql; on Spark a mirror is a
# table rebuilt from raw), and the passes of tests of kept tables (macros/kept_test.sql)
DUCKDB_ONLY = {("audit", "model_fingerprints"), ("intermediate", "int_identity__clusters__graph"),
               ("audit", "mirror_counts"), ("audit", "test_passes")}  # fmt: skip
# Tables whose rows are a run's record rather than its data: the batch outcome (timings, paths),
# the dbt invocations' log and the landing files' stat signatures (inodes and times).
RECORDS = {("audit", "ingestion_batches"), ("audit", "dbt_build_log"),
           ("audit", "landing_file_signatures")}  # fmt: skip
# a run's clock and ids, besides the nightly's own (nightly_job.RUN_STAMPS), and graph health's
# content key, a hash of the digests DuckDB's reusable tables take (identity/graph_key.py; none
# on Spark)
STAMPS = RUN_STAMPS | {"invocation_id", "processed_at", "published_at", "graph_key"}
# a source whose publish is stopped halfway on Spark, then finished by the next stage
HALF_PUBLISHED = "email__engagement"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


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
def nights(tmp_path_factory, monkeypatch_module, server) -> dict[str, Any]:
    """The nightly job on DuckDB (while the server starts), then on Spark, from the same
    generated landing files; returns the DuckDB warehouse, the landing folder and each night's
    dbt row counts."""
    assert SPARK_DBT.exists(), "no .venv-spark: run `make spark` (make test does)"
    from demo.generator import generate

    root = tmp_path_factory.mktemp("spark_nightly")
    landing, pristine = root / "landing", root / "generated"
    generate(CUSTOMERS, SEED, AS_OF, pristine, root / "truth", progress=None)
    shutil.copytree(pristine, landing)
    for key, value in night_settings(landing, root).items():
        monkeypatch_module.setenv(key, value)
    job, keys = whole_nightly()
    duck_home, spark_home = root / "duckdb_home", root / "spark_home"
    use_engine(monkeypatch_module.setenv, "duckdb", duck_home)
    duck_counts = run_nightly(job, keys, AS_OF)
    # the night's erasure rewrote the landing files and file drops it found the person in: the
    # Spark night starts from the same files, at the same paths
    shutil.rmtree(landing)
    shutil.copytree(pristine, landing)
    shutil.rmtree(root / "outbox", ignore_errors=True)
    server.wait_ready()
    use_engine(monkeypatch_module.setenv, "spark", spark_home)
    spark_counts = run_nightly(job, keys, AS_OF)
    assert not (spark_home / "wh.duckdb").exists()  # nothing of the night went to DuckDB
    return {"warehouse": duck_home / "wh.duckdb", "landing": landing,
            "row_counts": (duck_counts, spark_counts)}  # fmt: skip


def _spark_rows(duck: duckdb.DuckDBPyConnection, schema: str, table: str, cols: list[str]):
    """A Spark table's rows, read from its Parquet files."""
    from orchestration.engine.spark import table_files

    files = sorted(table_files(schema, table).glob("*.parquet"))
    if not files:  # a table of no rows may have no file
        return []
    select = ", ".join(f'"{c}"' for c in cols)
    paths = ", ".join(f"'{f}'" for f in files)
    return duck.execute(f"select {select} from read_parquet([{paths}])").fetchall()


def _rounded(value: object) -> object:
    """A decoded JSON value with its floats to 7 significant digits and its timings left out."""
    if isinstance(value, float):
        return float(f"{value:.7g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items() if k not in STAMPS}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _canonical_json(rows: list[tuple]) -> list[tuple]:
    """`rows` with each JSON text (an object or array: model parameters, fit records, outcomes)
    re-serialised alike, keys sorted and floats to 7 significant digits — the engines sum and
    divide in different orders, which moves the last digits."""

    def canon(value: object) -> object:
        if not isinstance(value, str) or value[:1] not in ("{", "["):
            return value
        try:
            return json.dumps(_rounded(json.loads(value)), sort_keys=True)
        except ValueError:
            return value

    return [tuple(canon(v) for v in row) for row in rows]


def test_the_nightly_on_spark_writes_every_table_duckdbs_nightly_writes(nights):
    """Same landing files in, same rows in every table of every schema out: raw and quarantine
    after the night's erasures, the ingestion audit and cursor, staging batches, every model,
    dbt's state tables (identity registry and merge log, segment history and stats), the phone
    lookup, the identity model, the insight marts and activation's state and contact history."""
    from orchestration.engine import table_names
    from orchestration.warehouse import spark_session

    duck_counts, spark_counts = nights["row_counts"]  # each table model's, counted by dbt
    assert spark_counts == duck_counts and len(duck_counts) >= 30

    with spark_session(read_only=True) as spark:
        on_spark = {(s, t) for s in SCHEMAS for t in table_names(spark, s)}
    with duckdb.connect(str(nights["warehouse"]), read_only=True) as duck:
        on_duck = {(s, t) for s in SCHEMAS for t in table_names(duck, s)}
        assert on_duck >= DUCKDB_ONLY
        on_duck -= DUCKDB_ONLY
        assert on_spark == on_duck
        assert ("marts", "next_best_action") in on_duck and (
            "activation",
            "contact_history",
        ) in on_duck
        problems, compared = [], 0
        for schema, table in sorted(on_duck - RECORDS):
            cols = [
                c for (c,) in duck.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall() if c not in STAMPS
            ]  # fmt: skip
            select = ", ".join(f'"{c}"' for c in cols)
            rows = duck.execute(f"select {select} from {schema}.{table}").fetchall()
            theirs = _spark_rows(duck, schema, table, cols)
            problems += row_differences(
                f"{schema}.{table}", cols, _canonical_json(theirs), _canonical_json(rows), "Spark"
            )
            compared += len(rows)
    assert not problems, "\n".join(problems)
    assert compared > 30 * CUSTOMERS


def _refused_customer(warehouse: Path) -> str:
    """A customer with a refused link (its explanation lists links, refusals and the customers
    a refusal would have joined), else the first customer."""
    with duckdb.connect(str(warehouse), read_only=True) as duck:
        row = duck.execute(
            "select min(m.customer_id) from marts.customer_id_map m "
            "join intermediate.int_identity__limit_drops l on l.record_key = m.record_key"
        ).fetchone()
        return (
            row[0] or duck.execute("select min(customer_id) from marts.customer_360").fetchone()[0]
        )


CUSTOMER, TRUTH, AS_OF_FLAG = "<customer>", "<truth>", "<as_of>"


@pytest.mark.parametrize(
    "command",
    [
        ["summary", AS_OF_FLAG],
        ["identity", "explain", CUSTOMER],
        ["identity", "evaluate", "--truth", TRUTH],
        ["segments", "preview", "vip", AS_OF_FLAG],
        ["segments", "explain", "vip", CUSTOMER, AS_OF_FLAG],
        ["report", AS_OF_FLAG],
        ["sync", "--dry-run", AS_OF_FLAG],
    ],
    ids=lambda c: " ".join(w for w in c if not w.startswith("<")),
)
def test_the_cli_prints_from_spark_what_it_prints_from_duckdb(nights, command, capsys, monkeypatch):
    """The read commands on the Spark warehouse: exit 0 and the same text as on DuckDB's (before
    the next test re-publishes a batch on Spark); the report's page the same bytes."""
    from orchestration.cli import main

    values = {
        CUSTOMER: [_refused_customer(nights["warehouse"])],
        TRUTH: [str(nights["landing"].parent / "truth" / "ground_truth.csv")],
        AS_OF_FLAG: ["--as-of", AS_OF.isoformat()],
    }
    argv = [part for word in command for part in values.get(word, [word])]
    outputs, pages = [], []
    for engine, home in (("spark", nights["warehouse"].parent.parent / "spark_home"),
                         ("duckdb", nights["warehouse"].parent)):  # fmt: skip
        use_engine(monkeypatch.setenv, engine, home)
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, f"{engine}: {err}"
        # the identity model's training time is the night's clock, not its data; a written
        # file's path is under the engine's home
        out = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<trained at>", out)
        outputs.append(out.replace(str(home), "<home>"))
        # the page's "Generated <minute> UTC" is the wall clock of its writing: the two
        # engines' pages may be written a minute apart
        pages += [
            re.sub(rb"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC", b"Generated <at>", p.read_bytes())
            for p in home.glob("reports/*/index.html")
        ]
    assert outputs[0].strip(), "nothing printed"
    assert outputs[0] == outputs[1]
    if command[0] == "report":
        assert len(pages) == 2 and b"Generated <at>" in pages[0] and pages[0] == pages[1]


def test_a_publish_stopped_halfway_on_spark_is_undone_and_published_whole(nights):
    """HALF_PUBLISHED's publish as a crash before its last write leaves it on Spark (rows in raw
    and quarantine, files in the cursor, no audit row): the next stage undoes it, and the batch
    is published again, whole and once."""
    from orchestration.contracts.model import source_contract
    from orchestration.ingest.wap import publish_batch, stage_batch
    from orchestration.warehouse import spark_session

    contract = source_contract(HALF_PUBLISHED)
    count = f"select count(*) from raw.{contract.id}"
    with spark_session() as spark:
        loaded = spark.execute(count).fetchone()[0]
        assert loaded > 0
        spark.execute("delete from audit.ingestion_audit where contract_id = ?", [contract.id])
        assert spark.rowcount == 1
        batch = stage_batch(spark, contract, nights["landing"], AS_OF, "spark-rerun")
        assert batch.deduplicated == 0, "the stopped publish was undone, not taken as published"
        assert batch.loaded == loaded  # less the rows of erased people, dropped again at stage
        assert publish_batch(spark, contract, batch, "spark-rerun", nights["landing"])
        assert spark.execute(count).fetchone()[0] == loaded
        assert (
            spark.execute(
                "select count(*) from audit.ingestion_audit where contract_id = ?", [contract.id]
            ).fetchone()[0]
            == 1
        )


def test_a_session_drops_the_scratch_schemas_killed_sessions_left(server):
    """A session killed before it closed leaves its scratch schema (temp tables) on the server
    and its registered rows in the staging folder; the next writable session drops those over
    a day old, and not a live session's."""
    import contextlib
    import os

    from pyhive import hive

    from orchestration.engine.spark import spark_warehouse
    from orchestration.engine.spark_statements import session_schema
    from orchestration.warehouse import spark_session

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    killed = session_schema(now - dt.timedelta(days=2), "deadbeef")
    live = session_schema(now - dt.timedelta(minutes=5), "cafef00d")
    server.wait_ready()
    with spark_session(read_only=True) as spark:
        for schema in (killed, live):
            spark.execute(f"create schema if not exists {schema}")
            spark.execute(f"create table {schema}.scratch as select 1 as x")
    staging = spark_warehouse() / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    old_rows, live_rows = (
        staging / "c360-batch-deadbeef.parquet",
        staging / "c360-batch-cafe.parquet",
    )
    for path in (old_rows, live_rows):
        path.write_bytes(b"PAR1")
    two_days_ago = now.replace(tzinfo=dt.UTC).timestamp() - 2 * 86400
    os.utime(old_rows, (two_days_ago, two_days_ago))
    with spark_session() as spark:
        assert not spark.table_exists(live, "scratch")  # no session's scratch is the warehouse's
    # the server's own list (a session's catalog hides every session's scratch schema)
    with contextlib.closing(hive.connect(host=server.host, port=server.port)) as raw:
        cursor = raw.cursor()
        cursor.execute("show schemas")
        schemas = {row[0] for row in cursor.fetchall()}
        assert killed not in schemas and live in schemas
        cursor.execute(f"drop schema {live} cascade")
    assert not old_rows.exists() and live_rows.exists()
    live_rows.unlink()


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
