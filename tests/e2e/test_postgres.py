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
import sys
from dataclasses import astuple
from pathlib import Path

import dagster as dg
import duckdb
import jinja2
import pytest

from orchestration.contracts.model import all_source_contracts
from orchestration.contracts.rules_sql import quote_ident
from orchestration.engine.postgres import PostgresConnection
from orchestration.paths import REPO_ROOT, dbt_project_dir
from orchestration.segments.model import load_all
from tests.e2e.compare import row_differences
from tests.e2e.dbt_builds import assert_every_node_built, wait_for_builds
from tests.e2e.pg import PgDatabase, PostgresServer, sorted_rows

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
            [str(Path(sys.executable).parent / "dbt"), "build", "--target", target,
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


def _close(a: object, b: object) -> bool:
    """Equal, floats to a relative 1e-6 (the engines sum in different orders)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))
    return a == b


def _same_rows(a: list[tuple], b: list[tuple]) -> bool:
    rows_a, rows_b = sorted(a, key=repr), sorted(b, key=repr)
    return len(rows_a) == len(rows_b) and all(
        len(x) == len(y) and all(_close(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(rows_a, rows_b, strict=True)
    )


def test_python_steps_after_dbt_give_the_same_answers_on_postgres(raw_set, builds):
    """Python steps written against the warehouse Connection (orchestration/engine), run on each
    engine's marts: identity graph health and its run log, a traits mart's publish, and the
    insight models (CLV, lead score, send time) with their fit records and traits marts."""
    import pandas as pd

    from orchestration.identity import health
    from orchestration.insight import (
        clv,
        customer_360_insight,
        lead_score,
        lift,
        next_best_action,
        report_data,
        segment_value,
        send_time,
    )
    from orchestration.insight.traits_table import replace_traits

    db, wh_path, *_ = raw_set
    runs: dict[str, dict] = {}
    tables = {
        "traits": "select * from marts.e2e_traits",
        "health": f"select as_of, run_id, customers, records, merges, splits from {health.TABLE}",
        "clv": f"select * exclude (as_of) from {clv.TRAITS_TABLE}",
        "lead_score": f"select * exclude (as_of) from {lead_score.TRAITS_TABLE}",
        "send_time": f"select * exclude (as_of) from {send_time.TRAITS_TABLE}",
        "segment_value": f"select * from {segment_value.TABLE}",
        "lift": "select * from e2e.lift",
        "next_best_action": f"select * from {next_best_action.TABLE}",
        "action_membership": f"select * from {next_best_action.AUDIENCE_VIEW}",
    }
    with duckdb.connect(str(wh_path)) as duck, PostgresConnection.connect(db.dsn) as pg:
        ids = sorted(
            r[0] for r in duck.execute("select customer_id from marts.customer_360").fetchall()
        )
        some = ids[::3]
        frame = pd.DataFrame(
            {"customer_id": some, "score": [i / 7 for i in range(len(some))],
             "label": [None if i % 4 == 0 else f"l{i % 3}" for i in range(len(some))]}
        )  # fmt: skip
        for name, con in (("duckdb", duck), ("postgres", pg)):
            measured = health.measure(con, AS_OF, "pg-e2e")
            health.record(con, measured, "pg-e2e")
            run = {
                "measured": measured,
                "traits_rows": replace_traits(
                    con, "marts.e2e_traits", frame, "traits.score, traits.label", AS_OF
                ),
                "clv": clv.run(con, AS_OF, "pg-e2e"),
                "lead_score": lead_score.run(con, AS_OF, "pg-e2e"),
                "send_time": send_time.run(con, AS_OF, "pg-e2e"),
                "segments": segment_value.run(con, AS_OF),
            }
            nba = next_best_action.run(con, AS_OF)
            nba.seconds = 0.0
            run["nba"] = nba
            # the marketer report's data, after the insight marts and the planted lift
            run["report"] = report_data.collect(con, AS_OF)
            customer_360_insight.build(con)
            run["insight_view"] = (
                customer_360_insight.check(con),
                [c[0] for c in customer_360_insight.columns(con)],
            )
            # lift over planted outcomes (no campaign has run on the fixture)
            _plant_outcomes(con, ids)
            run["lift"] = lift.compute(
                con, AS_OF, {"vip": 0.2}, {"s1": 0.05}, outcomes="e2e.outcomes"
            )
            lift.write(con, run["lift"], "e2e.lift")
            # the DuckDB dialect's `exclude` is read by DuckDB itself: compare on the Python side
            run["tables"] = {
                key: duck.execute(sql).fetchall() if con is duck else _pg_rows(pg, sql)
                for key, sql in tables.items()
            }
            runs[name] = run
    d, p = runs["duckdb"], runs["postgres"]
    assert p["measured"] == d["measured"] and d["measured"].customers > CUSTOMERS / 2
    assert p["traits_rows"] == d["traits_rows"] == len(ids)
    assert sum(r[1] is not None for r in d["tables"]["traits"]) == len(some)
    fit_d, fit_p = d["clv"][0], p["clv"][0]
    assert (fit_p.converged, fit_p.customers) == (fit_d.converged, fit_d.customers) != (None, 0)
    assert all(
        _close(getattr(fit_p, k), getattr(fit_d, k))
        for k in ("r", "alpha", "a", "b", "p", "q", "v")
    )
    assert (p["lead_score"].status, p["lead_score"].rows) == (d["lead_score"].status, len(ids))
    assert p["send_time"].rows == d["send_time"].rows == len(ids)
    assert p["send_time"].customers_with_events == d["send_time"].customers_with_events > 0
    for key in tables:
        assert _same_rows(p["tables"][key], d["tables"][key]), key
    assert sum(r[2] is not None for r in d["tables"]["clv"]) > 0  # p_alive scored for buyers
    assert p["segments"] == d["segments"] > 0
    assert p["nba"] == d["nba"] and d["nba"].rows > 0 and d["nba"].customers_with_action > 0
    assert p["insight_view"] == d["insight_view"]
    shown = 0
    for name in ("segment_sizes", "clv", "retention", "lift", "calibration"):
        sp, sd = getattr(p["report"], name), getattr(d["report"], name)
        assert (sp.empty_reason, sp.facts) == (sd.empty_reason, sd.facts), name
        assert (sp.frame is None) == (sd.frame is None), name
        if sd.frame is not None:
            shown += 1
            assert list(sp.frame.columns) == list(sd.frame.columns), name
            rows = [tuple(r) for r in sd.frame.itertuples(index=False)]
            assert _same_rows([tuple(r) for r in sp.frame.itertuples(index=False)], rows), name
    assert shown >= 2  # CLV and retention at least have data on the fixture
    assert d["insight_view"][0]["rows"] == d["insight_view"][0]["distinct_customers"] == len(ids)
    assert len(d["lift"]) >= 2 and all(
        all(_close(x, y) for x, y in zip(astuple(a), astuple(b), strict=True))
        for a, b in zip(p["lift"], d["lift"], strict=True)
    )


def _plant_outcomes(con, ids: list[str]) -> None:
    """A campaign_outcomes-shaped table: two nights of one sync, treated and held out."""
    con.execute("create schema if not exists e2e")
    con.execute(
        "create table e2e.outcomes (sync_id varchar, segment_name varchar, as_of date, "
        "customer_id varchar, is_holdout boolean, outcome varchar, has_ordered boolean, "
        "order_revenue decimal(12, 2), is_window_complete boolean)"
    )
    for i, customer in enumerate(ids[:120]):
        night = AS_OF - dt.timedelta(days=14 + i % 2)
        con.execute(
            "insert into e2e.outcomes values ('s1', 'vip', ?, ?, ?, 'ok', ?, ?, true)",
            [night, customer, i % 5 == 0, i % 3 == 0, round(10 + i * 1.37, 2) if i % 3 == 0 else 0],
        )


def test_identity_model_and_probabilistic_links_are_the_same_on_postgres(raw_set, builds):
    """The identity steps between the two dbt builds, on each engine's identity tables: the model
    trained without labels on the warehouse's records, then the probabilistic links scored with
    it; a second night with nothing new re-uses the pairs on both."""
    from orchestration.identity import config as identity_config
    from orchestration.identity import probabilistic, training

    settings = identity_config.load().probabilistic
    db, wh_path, *_ = raw_set
    out: dict[str, dict] = {}
    with duckdb.connect(str(wh_path)) as duck, PostgresConnection.connect(db.dsn) as pg:
        for name, con in (("duckdb", duck), ("postgres", pg)):
            records = probabilistic.candidates(con)
            outcome = training.train(con, AS_OF, settings, force=True)
            model, threshold, label = training.model_in_use(con, settings)
            first = probabilistic.refresh(con, AS_OF.isoformat(), True, threshold, model)
            again = probabilistic.refresh(con, AS_OF.isoformat(), True, threshold, model)
            links = con.execute(
                "select record_key, node_key, identifier_value, match_probability, as_of "
                f"from {probabilistic.TABLE}"
            ).fetchall()
            out[name] = {"records": records, "attempt": outcome.attempt, "label": label,
                         "threshold": threshold, "first": first, "again": again, "links": links}  # fmt: skip
    d, p = out["duckdb"], out["postgres"]
    assert d["records"].num_rows > CUSTOMERS / 2
    assert sorted(p["records"].to_pylist(), key=repr) == sorted(d["records"].to_pylist(), key=repr)
    assert (p["attempt"].status, p["attempt"].records) == (
        d["attempt"].status,
        d["attempt"].records,
    )
    assert _close(p["attempt"].match_prior, d["attempt"].match_prior)
    assert (p["label"], p["threshold"]) == (d["label"], d["threshold"])
    assert (p["first"].links, p["first"].reused) == (d["first"].links, False)
    assert d["first"].links > 0 and p["again"].reused and d["again"].reused
    assert _same_rows(p["links"], d["links"])


def _pg_rows(pg: PostgresConnection, sql: str) -> list[tuple]:
    """Rows of `sql` on Postgres, DuckDB's `* exclude (as_of)` done by dropping the column."""
    if "exclude (as_of)" not in sql:
        return pg.execute(sql).fetchall()
    cursor = pg.execute(sql.replace(" exclude (as_of)", ""))
    drop = [c[0] for c in cursor.description].index("as_of")
    return [r[:drop] + r[drop + 1 :] for r in cursor.fetchall()]


# --- 3. hash bucket parity -----------------------------------------------------------------------


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


def _nightly(job: dg.JobDefinition, keys: list[dg.AssetKey]) -> None:
    """One nightly of `keys` for AS_OF, in this process; every step and gate passes."""
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=AS_OF.isoformat(),
            asset_selection=keys,
            raise_on_error=False,
        )
        failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success, failed
        checks = result.get_asset_check_evaluations()
        gates = [c for c in checks if c.check_name == "meets_contract"]
        assert len(gates) == len(all_source_contracts()) and all(c.passed for c in gates)


# Columns a run stamps with its own clock or id (a contact's id hashes its run's id): the only
# ones two runs may differ in.
_RUN_STAMPS = frozenset({"_loaded_at", "run_id", "evaluated_at", "fitted_at", "trained_at",
                         "computed_at", "created_at", "measured_at", "built_at", "seconds",
                         "sync_run_id", "contact_id", "consent_snapshot_at", "recorded_at",
                         "started_at", "finished_at", "duration_seconds"})  # fmt: skip


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
        "C360_LANDING_DIR": str(generated / "landing"), "C360_OUTBOX_DIR": str(tmp_path / "outbox"),
        "C360_DUCKDB_TEMP_DIR": str(tmp_path / "tmp"), "DAGSTER_HOME": str(tmp_path / "dh"),
        "C360_ERASURE_KEY": "e2e-erasure-key-" + "0" * 32,
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    from orchestration.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def("nightly")
    keys = list(definitions.resolve_asset_graph().executable_asset_keys)  # the whole nightly
    duck_home, pg_home = tmp_path / "duckdb_home", tmp_path / "postgres_home"
    monkeypatch.setenv("C360_DBT_TARGET", "duckdb")
    monkeypatch.setenv("C360_HOME", str(duck_home))
    monkeypatch.setenv("C360_WAREHOUSE", str(duck_home / "wh.duckdb"))
    _nightly(job, keys)
    monkeypatch.setenv("C360_DBT_TARGET", "postgres")
    monkeypatch.setenv("C360_HOME", str(pg_home))
    monkeypatch.setenv("C360_WAREHOUSE", str(pg_home / "unused.duckdb"))
    _nightly(job, keys)
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
        assert not _table_differences(cur, duck, marts, skip=_RUN_STAMPS)
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
    assert not (tmp_path / "unused.duckdb").exists()
