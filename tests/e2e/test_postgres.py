"""Real Postgres (a throwaway server, see pg.py): Dagster run storage from the committed
dagster.yaml, the whole dbt project built with `--target postgres` on generated data ingested by the
real write-audit-publish path (portable SQL, same answers as DuckDB), and the holdout hash bucket
identical on Postgres, DuckDB and Python."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import jinja2
import pytest

from orchestration import dbt_warm
from orchestration.contracts.model import all_source_contracts
from orchestration.contracts.rules_sql import quote_ident
from orchestration.engine.postgres import PostgresConnection
from orchestration.paths import REPO_ROOT, dbt_project_dir
from orchestration.segments.model import load_all
from tests.e2e.compare import row_differences
from tests.e2e.dbt_builds import assert_every_node_built, wait_for_builds
from tests.e2e.nightly_job import (
    RUN_STAMPS,
    night_settings,
    run_nightly,
    use_engine,
    whole_nightly,
)
from tests.e2e.pg import PgDatabase, PostgresServer, sorted_rows
from tests.e2e.python_steps import (
    assert_same_identity,
    assert_same_insight,
    identity_steps,
    insight_steps,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]
AS_OF = dt.date(2026, 11, 21)
CUSTOMERS, SEED = 300, 7
META_COLUMNS = "_batch_id varchar, _loaded_at timestamp, _source_file varchar"


def py_bucket(text: str) -> int:
    """The holdout bucket as documented in macros/normalize.sql."""
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % 10000


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """~300 generated customers' landing files (read-only for the tests)."""
    from demo.generator import generate

    root = tmp_path_factory.mktemp("pg_generated")
    generate(CUSTOMERS, SEED, AS_OF, root / "landing", root / "truth", progress=None)
    return root


# --- 1. Dagster run storage ----------------------------------------------------------------------


def test_dagster_runs_and_events_are_stored_in_postgres(
    pg_server: PostgresServer, generated: Path, tmp_path, monkeypatch
):
    db = pg_server.create_database("dagster")
    for key, value in {
        "DAGSTER_PG_USER": db.user, "DAGSTER_PG_PASSWORD": db.password, "DAGSTER_PG_HOST": db.host,
        "DAGSTER_PG_DB": db.dbname, "DAGSTER_PG_PORT": str(db.port),
        "C360_HOME": str(tmp_path), "C360_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "C360_LANDING_DIR": str(generated / "landing"), "C360_OUTBOX_DIR": str(tmp_path / "outbox"),
        "C360_DUCKDB_TEMP_DIR": str(tmp_path / "tmp"),
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")  # the committed file itself
    from orchestration.definitions import defs

    job = defs().resolve_job_def("nightly")
    crm = [dg.AssetKey(["staged", "crm", "contacts"]), dg.AssetKey(["crm", "contacts"])]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = job.execute_in_process(
            instance=instance,
            partition_key=AS_OF.isoformat(),
            asset_selection=crm,
            raise_on_error=False,
        )
        assert result.success
        latest = instance.get_latest_materialization_event(dg.AssetKey(["crm", "contacts"]))
        assert latest is not None and latest.run_id == result.run_id
        assert latest.asset_materialization.metadata["rows_loaded"].value > 0

    with db.cursor() as cur:  # straight from Postgres, not via Dagster
        cur.execute("select status from runs where run_id = %s", [result.run_id])
        assert cur.fetchall() == [("SUCCESS",)]
        cur.execute(
            "select dagster_event_type, count(*) from event_logs where run_id = %s group by 1",
            [result.run_id],
        )
        events = dict(cur.fetchall())
        assert events.get("PIPELINE_SUCCESS") == 1, events  # RUN_SUCCESS's stored name
        assert events.get("ASSET_MATERIALIZATION") == 2
        cur.execute(
            "select count(*) from event_logs where run_id = %s and asset_key = %s",
            [result.run_id, dg.AssetKey(["crm", "contacts"]).to_string()],
        )
        assert cur.fetchone()[0] > 0
        cur.execute("select partition from runs where run_id = %s", [result.run_id])
        assert cur.fetchone() == (AS_OF.isoformat(),)


# --- 2. dbt build --target postgres --------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_set(generated: Path, pg_server: PostgresServer, tmp_path_factory):
    """The generated files ingested on each engine by the same write-audit-publish code (stage,
    gate, publish), DuckDB directly and Postgres through the warehouse Connection; the phone
    lookup written on each engine by its own Python step. Returns (Postgres database, DuckDB
    warehouse path, rows per raw table, each engine's staged batches)."""
    from orchestration.contracts.gx_suite import validate_table
    from orchestration.identity import phones
    from orchestration.ingest.gate import evaluate_gate
    from orchestration.ingest.wap import batch_table, publish_batch, stage_batch
    from orchestration.warehouse import ensure_schemas, warehouse

    root = tmp_path_factory.mktemp("pg_raw")
    wh_path, landing = root / "wh.duckdb", generated / "landing"
    db = pg_server.create_database("c360")
    counts: dict[str, int] = {}
    batches: dict[str, dict[str, dict]] = {"duckdb": {}, "postgres": {}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("C360_DUCKDB_TEMP_DIR", str(root / "tmp"))  # nothing lands in the repo's .c360
        with warehouse(wh_path) as wh, PostgresConnection.connect(db.dsn) as pg:
            ensure_schemas(pg)
            for engine, con in (("duckdb", wh), ("postgres", pg)):
                for c in all_source_contracts():
                    batch = stage_batch(con, c, landing, AS_OF, "pg-e2e")
                    suite = validate_table(con, c, f"{batch_table(c)}__clean")
                    outcome = evaluate_gate(c, batch, suite)
                    assert outcome.passed, (engine, c.id, outcome.failures)
                    assert publish_batch(con, c, batch, "pg-e2e", landing), (engine, c.id)
                    # file_signature is the file's stat, absent while the file is too new to
                    # trust it ("racy"): a matter of when each engine read it, not of the engine
                    staged = json.loads(batch.to_json())
                    staged.pop("file_signature")
                    batches[engine][c.id] = staged | {"gx_evaluated": suite.evaluated}
            for c in all_source_contracts():
                counts[c.id] = wh.execute(f"select count(*) from raw.{c.id}").fetchone()[0]
        # the libphonenumber lookup staging reads: its Python step run on each engine, Postgres
        # through the warehouse Connection (engine.postgres), not copied from DuckDB
        with warehouse(wh_path) as wh:
            phones.refresh(wh, AS_OF.isoformat())
        with PostgresConnection.connect(db.dsn) as pg:
            phones.refresh(pg, AS_OF.isoformat())
    assert sum(counts.values()) > 10 * CUSTOMERS  # non-trivial: every source has rows
    sources = {cid.split("__")[0] for cid in counts}
    assert sources == {cid.split("__")[0] for cid, n in counts.items() if n}, counts
    return db, wh_path, counts, batches


def test_ingestion_stages_gates_and_publishes_the_same_on_postgres(raw_set):
    """Write-audit-publish on Postgres: the same staged counts, samples and gate evidence per
    contract as DuckDB's, and the same rows in raw, quarantine and the audit tables."""
    from orchestration.warehouse import warehouse

    db, wh_path, counts, batches = raw_set
    for cid, duck in batches["duckdb"].items():
        assert batches["postgres"][cid] == duck, cid
    assert sum(b["quarantined"] for b in batches["duckdb"].values()) > 0  # rules were exercised
    with warehouse(wh_path, read_only=True) as wh, PostgresConnection.connect(db.dsn) as pg:
        for c in all_source_contracts():
            for table, skip in (
                (f"raw.{c.id}", ("_loaded_at",)),
                (f"quarantine.{c.id}", ()),
            ):
                assert sorted_rows(pg, table, skip) == sorted_rows(wh, table, skip), table
        for table in ("audit.ingestion_files", "audit.ingestion_audit"):
            skip = ("published_at",)
            assert sorted_rows(pg, table, skip) == sorted_rows(wh, table, skip), table
        assert pg.execute("select count(*) from audit.ingestion_audit").fetchone()[0] == len(counts)


def _dbt_build(target: str, db: PgDatabase, warehouse: Path, out: Path) -> subprocess.Popen:
    env = os.environ | {
        "C360_PG_HOST": db.host, "C360_PG_PORT": str(db.port), "C360_PG_USER": db.user,
        "C360_PG_PASSWORD": db.password, "C360_PG_DATABASE": db.dbname,
        "C360_WAREHOUSE": str(warehouse), "C360_DUCKDB_TEMP_DIR": str(out / "tmp"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }  # fmt: skip
    out.mkdir(parents=True)
    with (out / "stdout.txt").open("w") as log:  # the child keeps its own copy of the handle
        return subprocess.Popen(
            [dbt_warm.executable(), "build", "--target", target,
             "--profiles-dir", ".", "--vars", f"{{as_of: '{AS_OF}'}}",
             "--target-path", str(out / "target"), "--log-path", str(out / "logs")],
            cwd=dbt_project_dir(), env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


@pytest.fixture(scope="module")
def builds(raw_set, tmp_path_factory) -> dict[str, Path]:
    """`dbt build` of the whole project on Postgres and, on the same raw rows, on DuckDB
    (concurrently: separate databases). Returns each build's output folder."""
    db, wh_path, *_ = raw_set
    root = tmp_path_factory.mktemp("pg_dbt")
    procs = {t: _dbt_build(t, db, wh_path, root / t) for t in ("postgres", "duckdb")}
    wait_for_builds(procs, root, timeout=300)
    return {t: root / t for t in procs}


def test_dbt_build_on_postgres_passes_every_model_and_test(builds):
    assert_every_node_built(builds["postgres"], builds["duckdb"])


def test_customer_360_and_segments_on_postgres(raw_set, builds):
    db, *_ = raw_set
    with db.cursor() as cur:
        cur.execute("select count(*), count(distinct customer_id) from marts.customer_360")
        n, distinct = cur.fetchone()
        assert n == distinct > CUSTOMERS / 2
        cur.execute("select customer_id, segment_name, is_holdout from marts.segment_membership")
        membership = cur.fetchall()
    seen, defined = {s for _, s, _ in membership}, {s.name for s in load_all()}
    # a small data set leaves some segments empty (e.g. no product-qualified leads)
    assert seen <= defined and len(seen) >= len(defined) // 2, (seen, defined)
    # The compiled postgres hash_bucket decides holdouts exactly as Python does.
    threshold = {s.name: round(s.holdout * 10000) for s in load_all()}
    wrong = [(c, s, h) for c, s, h in membership if h != (py_bucket(f"{c}:{s}") < threshold[s])]
    assert not wrong


def _normalized(rows: list[tuple]) -> list[tuple]:
    return [tuple(tuple(v) if isinstance(v, list) else v for v in row) for row in rows]


def _canonical_json(value: object) -> object:
    if isinstance(value, str):
        value = json.loads(value)
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _table_differences(
    cur, duck, tables: list[tuple[str, str]], skip: frozenset[str] = frozenset({"_loaded_at"})
) -> list[str]:
    """Where each (schema, table) differs between Postgres (`cur`) and DuckDB (`duck`)
    (compare.row_differences; DuckDB divides decimals in double precision and Postgres exactly,
    so a half-cent tie can round either way)."""
    problems: list[str] = []
    for schema, table in tables:
        cur.execute(f"select * from {schema}.{table}")
        cols = [d.name for d in cur.description]
        on_pg = _normalized(cur.fetchall())
        select = ", ".join(quote_ident(c) for c in cols)
        on_duck = _normalized(duck.execute(f"select {select} from {schema}.{table}").fetchall())
        # a json column: decoded by Postgres' driver, text from DuckDB; compared as canonical JSON
        for i in {i for r in on_pg for i, v in enumerate(r) if isinstance(v, dict)}:
            on_pg = [(*r[:i], _canonical_json(r[i]), *r[i + 1 :]) for r in on_pg]
            on_duck = [(*r[:i], _canonical_json(r[i]), *r[i + 1 :]) for r in on_duck]
        problems += row_differences(f"{schema}.{table}", cols, on_pg, on_duck, "Postgres", skip)
    return problems


def test_every_model_has_the_same_rows_on_postgres_and_duckdb(raw_set, builds):
    """Same raw rows in, same rows out of every model: the SQL is portable, not just runnable.
    Exact for everything but decimals/floats, which may differ by one cent: DuckDB divides
    decimals in double precision and Postgres exactly, so a half-cent tie (e.g.
    customer_360.average_order_value) can round either way."""
    db, wh_path, *_ = raw_set
    manifest = json.loads((builds["postgres"] / "target" / "manifest.json").read_text())
    models = sorted(
        (n["schema"], n["alias"])
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"]["materialized"] != "ephemeral"
    )
    assert ("marts", "customer_360") in models and ("marts", "segment_membership") in models
    models += [("raw", c.id) for c in all_source_contracts()]  # each engine's own ingestion
    models.append(("reference", "phone_numbers"))  # a Python step run on each engine
    with duckdb.connect(str(wh_path), read_only=True) as duck, db.cursor() as cur:
        problems = _table_differences(cur, duck, models)
    assert not problems


def test_python_steps_after_dbt_give_the_same_answers_on_postgres(raw_set, builds):
    """Python steps written against the warehouse Connection (orchestration/engine), run on each
    engine's marts: identity graph health and its run log, a traits mart's publish, and the
    insight models (CLV, lead score, send time) with their fit records and traits marts
    (tests/e2e/python_steps.py)."""
    db, wh_path, *_ = raw_set
    with duckdb.connect(str(wh_path)) as duck, PostgresConnection.connect(db.dsn) as pg:
        ids = sorted(
            r[0] for r in duck.execute("select customer_id from marts.customer_360").fetchall()
        )
        runs = {name: insight_steps(con, ids, AS_OF, "pg-e2e") for name, con in
                (("duckdb", duck), ("postgres", pg))}  # fmt: skip
    assert_same_insight(runs["postgres"], runs["duckdb"], CUSTOMERS)


def test_identity_model_and_probabilistic_links_are_the_same_on_postgres(raw_set, builds):
    """The identity steps between the two dbt builds, on each engine's identity tables: the model
    trained without labels on the warehouse's records, then the probabilistic links scored with
    it; a second night with nothing new re-uses the pairs on both."""
    db, wh_path, *_ = raw_set
    with duckdb.connect(str(wh_path)) as duck, PostgresConnection.connect(db.dsn) as pg:
        out = {name: identity_steps(con, AS_OF) for name, con in
               (("duckdb", duck), ("postgres", pg))}  # fmt: skip
    assert_same_identity(out["postgres"], out["duckdb"], CUSTOMERS)


def _macro_expression(adapter: str, text_expr: str) -> str:
    """Render the body dbt's dispatch picks for `adapter` (<adapter>__hash_bucket, else default__)
    straight from macros/normalize.sql."""
    source = (dbt_project_dir() / "macros" / "normalize.sql").read_text()
    module = jinja2.Environment().from_string(source).module
    macro = getattr(module, f"{adapter}__hash_bucket", None) or module.default__hash_bucket
    return str(macro(text_expr)).strip()


def test_holdout_bucket_is_identical_on_postgres_duckdb_and_python(postgres: PgDatabase):
    segments = [s.name for s in load_all()]
    ids = [
        f"{cid}:{seg}"
        for cid in (f"c{i:08x}" for i in range(200 // len(segments) + 1))
        for seg in segments
    ]
    ids += ["", ":", "ÄÖÜ:vip", "ünïcode:€", "x" * 300]
    assert len(ids) >= 200
    pg_expr = _macro_expression("postgres", "t")
    duck_expr = _macro_expression("duckdb", "t")
    assert re.search(r"\bmd5\(t\)", pg_expr) and re.search(r"\bmd5\(t\)", duck_expr)

    with postgres.cursor() as cur:
        cur.execute(
            f"select {pg_expr.replace('%', '%%')} from unnest(%s::text[]) "
            "with ordinality as u(t, i) order by i",
            [ids],
        )
        on_pg = [r[0] for r in cur.fetchall()]
    on_duck = [
        r[0]
        for r in duckdb.execute(
            f"select {duck_expr} from unnest(?::varchar[]) with ordinality as u(t, i) order by i",
            [ids],
        ).fetchall()
    ]
    in_py = [py_bucket(t) for t in ids]
    assert on_pg == in_py
    assert on_duck == in_py
    assert len(set(in_py)) > 150  # spread, not a constant


# --- 5. the nightly's Dagster assets with the warehouse on Postgres ------------------------------


def test_the_nightly_assets_run_with_the_warehouse_on_postgres(
    pg_server: PostgresServer, generated: Path, raw_set, tmp_path, monkeypatch, capsys
):
    """C360_DBT_TARGET=postgres moves dbt and the Python steps together: the nightly job's
    ingestion (with its blocking gates), phone lookup, dbt build and identity and insight steps
    run in Dagster on Postgres, and every mart and raw table holds the rows of the same nightly
    on DuckDB."""
    db = pg_server.create_database("nightly")
    for key, value in {
        "C360_PG_HOST": db.host, "C360_PG_PORT": str(db.port), "C360_PG_USER": db.user,
        "C360_PG_PASSWORD": db.password, "C360_PG_DATABASE": db.dbname,
        **night_settings(generated / "landing", tmp_path),
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    job, keys = whole_nightly()
    duck_home, pg_home = tmp_path / "duckdb_home", tmp_path / "postgres_home"
    use_engine(monkeypatch.setenv, "duckdb", duck_home)
    duck_counts = run_nightly(job, keys, AS_OF)
    use_engine(monkeypatch.setenv, "postgres", pg_home)
    # dbt counts each table model's rows on Postgres as on DuckDB (macros/row_count.sql)
    assert run_nightly(job, keys, AS_OF) == duck_counts and len(duck_counts) >= 30
    with PostgresConnection.connect(db.dsn) as pg:
        marts = sorted(
            ("marts", t)
            for (t,) in pg.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        )
    assert len(marts) > 20 and ("marts", "next_best_action") in marts
    # and what ingestion published, after the night's erasures
    marts += [("raw", c.id) for c in all_source_contracts()]
    # and what activation recorded: every contact and each sync's run
    with PostgresConnection.connect(db.dsn) as pg:
        synced = pg.execute(
            "select table_name from information_schema.tables where table_schema = 'activation'"
        ).fetchall()
        assert pg.execute("select count(*) from activation.contact_history").fetchone()[0] > 0
    marts += sorted(("activation", t) for (t,) in synced)
    with duckdb.connect(str(duck_home / "wh.duckdb"), read_only=True) as duck, db.cursor() as cur:
        assert not _table_differences(cur, duck, marts, skip=RUN_STAMPS)
    tmp_path = pg_home  # what the Postgres run wrote under its home
    with PostgresConnection.connect(db.dsn) as pg:
        assert pg.execute("select count(*) from marts.customer_360").fetchone()[0] > CUSTOMERS / 2
        for table in (
            "marts.customer_clv",
            "marts.customer_lead_score",
            "marts.customer_send_time",
        ):
            assert pg.execute(f"select count(*) from {table}").fetchone()[0] > 0, table
        assert pg.execute("select count(*) from audit.identity_models").fetchone()[0] >= 1
        assert pg.execute("select count(*) from marts.next_best_action").fetchone()[0] > 0
        assert (tmp_path / "reports" / AS_OF.isoformat() / "index.html").stat().st_size > 10_000
        customer = pg.execute(
            "select customer_id from marts.customer_360 order by customer_id limit 1"
        ).fetchone()[0]
    # the CLI's reads on the same engine (its entry point, in this process: the engine is read
    # from the environment at each command)
    from orchestration.cli import main

    shutil.copytree(generated / "truth", pg_home / "truth")  # the summary scores identity too
    for args, expect in (
        (["summary", "--as-of", AS_OF.isoformat()], "precision"),
        (["report", "--as-of", AS_OF.isoformat()], "index.html"),
        (["segments", "preview", "vip"], "vip"),
        (["identity", "explain", customer], customer),
        (["sync", "--dry-run", "--as-of", AS_OF.isoformat()], "segment"),
        (
            ["identity", "evaluate", "--truth", str(generated / "truth" / "ground_truth.csv")],
            "records",
        ),
    ):
        code = main(args)
        out = capsys.readouterr()
        assert code == 0 and expect in out.out, (args, out.out, out.err)
    # the DuckDB warehouse file C360_WAREHOUSE names was never created, by the run or the CLI
    assert not (tmp_path / "wh.duckdb").exists()
