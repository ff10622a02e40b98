"""Activation on a real Postgres (engine.postgres) gives the same answers as on DuckDB: for the
same marts, two nights of a diff sync (with A/B arms, a mirror removal, a revoked consent, a
merged-away id, rows the destination rejects, and a run that crashes mid-send and is resumed)
and of a file drop write the same activation tables row by row (sync_state, contact_history with
its row-level errors, sync_runs, the plan and its sent chunks), send the destination the same rows
with the same idempotency keys and payload texts, and drop the same files. Only wall-clock
timestamps (when a row was recorded or a run started) are left out of the comparison."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pytest

from orchestration.activation.arms import ArmSpec
from orchestration.activation.destinations.rows import EncodedRows, Outcome, Row, make_row
from orchestration.activation.diff import acknowledge, plan_diff
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.marts_guard import MartsNotConsistent, check_marts_built_for
from orchestration.activation.runner import run_sync
from orchestration.activation.sync_definition import SyncDefinition
from orchestration.engine import store_table
from orchestration.engine.postgres import PostgresConnection
from orchestration.warehouse import ensure_schemas
from tests.e2e.pg import PgDatabase, PostgresServer
from tests.webhook_server import WebhookServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "activation_sync.py"
MEMBERS = 240
MARTS = ("customer_360", "segment_membership", "consent_state", "customer_id_history")


def _bench():
    """bench/activation_sync.py (not a package): its synthesised marts and sync definition."""
    spec = importlib.util.spec_from_file_location("activation_sync_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pg_db(pg_server: PostgresServer, request) -> PgDatabase:
    return pg_server.create_database(f"activation_{request.node.name[:30].lower()}")


@pytest.fixture
def engines(pg_db: PgDatabase):
    """{"duckdb": an in-memory DuckDB, "postgres": a fresh Postgres database}, both holding the
    same synthesised marts (built in DuckDB, copied to Postgres as Arrow rows)."""
    bench = _bench()
    duck = duckdb.connect()
    bench.synthesise(duck, MEMBERS)
    pg = PostgresConnection.connect(pg_db.dsn)
    ensure_schemas(pg)
    for mart in MARTS:
        store_table(pg, f"marts.{mart}", duck.sql(f"select * from marts.{mart}").to_arrow_table())
    yield bench, {"duckdb": duck, "postgres": pg}
    pg.close()
    duck.close()


class RecordingDestination:
    """Applies every row but those whose identifier ends in one of `rejected_endings` (a
    permanent reject); records each row it was sent (identifier, op, idempotency key, payload
    text). `crash_at`: the send (1-based) at which it raises instead, as a process dying
    mid-sync would leave the plan."""

    def __init__(self, rejected_endings: tuple[str, ...] = (), crash_at: int | None = None):
        self.rejected_endings, self.crash_at = rejected_endings, crash_at
        self.sent: list[tuple[str, str, str, str]] = []
        self.sends = 0

    def _answer(self, rows: list[tuple[str, str, str, str]]) -> dict[str, Outcome]:
        self.sends += 1
        if self.crash_at is not None and self.sends == self.crash_at:
            raise ConnectionError("destination went away mid-sync")
        self.sent.extend(rows)
        return {
            key: Outcome("rejected", "invalid email", 1)
            if identifier.endswith(self.rejected_endings)
            else Outcome("ok", "", 1)
            for identifier, _, key, _ in rows
        }

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        return self._answer([(r.identifier, r.op, r.idempotency_key, r.payload_json) for r in rows])

    def send_encoded(self, rows: EncodedRows) -> dict[str, Outcome]:
        return self._answer(
            list(zip(rows.identifiers(), rows.ops(), rows.keys, rows.payloads, strict=True))
        )


def _syncs(bench) -> tuple[SyncDefinition, SyncDefinition]:
    """A mirror webhook sync with two arms (the arm sent as a field) and a file drop."""
    diff = dataclasses.replace(
        bench.SYNC,
        mode="mirror",
        max_remove_share=1.0,
        max_attempts=2,
        fields={**bench.SYNC.fields, "variant": "arm"},
        arms=(ArmSpec("subject_a", 0.45), ArmSpec("subject_b", 0.45)),
    )
    drop = SyncDefinition(
        name="file_drop__bench_audience",
        segment=bench.SEGMENT,
        destination="file_drop",
        channel="email",
        purpose="marketing",
        fields={"email": "email", "first_name": "first_name", "revenue": "lifetime_revenue"},
        mode="upsert",
        file_format="csv",
        path=Path("bench/file_drop__bench_audience.yml"),
    )
    return diff, drop


def _ids(con, sql: str) -> list[str]:
    return [r[0] for r in con.execute(sql).fetchall()]


def _second_night_changes(duck) -> list[str]:
    """The same changes for both engines (literal ids chosen on DuckDB): fields changed, members
    added and removed, a consent revoked, an id merged away."""
    members = _ids(
        duck,
        "select m.customer_id from marts.segment_membership as m "
        "inner join marts.customer_360 as c using (customer_id) "
        "inner join marts.consent_state as s on s.contact_point = c.email "
        "and s.channel = 'email' and s.purpose = 'marketing' "
        "where m.segment_name = 'bench_audience' and not m.is_holdout and s.is_consented "
        "order by m.customer_id",
    )
    outsiders = _ids(
        duck,
        "select customer_id from marts.customer_360 where customer_id not in "
        "(select customer_id from marts.segment_membership where segment_name = 'bench_audience')"
        " order by customer_id limit 4",
    )

    def listed(ids: list[str]) -> str:
        return ", ".join(f"'{i}'" for i in ids)

    changed, removed, revoked, merged = members[0:5], members[5:8], members[8:10], members[10:11]
    return [
        f"update marts.customer_360 set first_name = first_name || ' II' "
        f"where customer_id in ({listed(changed)})",
        "update marts.customer_360 set lifetime_revenue = 1234.5 "
        f"where customer_id = '{members[11]}'",
        f"delete from marts.segment_membership where segment_name = 'bench_audience' "
        f"and customer_id in ({listed(removed)})",
        "insert into marts.segment_membership (segment_name, customer_id, is_holdout, as_of) "
        f"select 'bench_audience', customer_id, false, date '2026-11-22' "
        f"from marts.customer_360 where customer_id in ({listed(outsiders)})",
        "update marts.consent_state set consent_status = 'revoked', is_consented = false "
        "where channel = 'email' and purpose = 'marketing' and contact_point in "
        f"(select email from marts.customer_360 where customer_id in ({listed(revoked)}))",
        "insert into marts.customer_id_history (retired_customer_id, current_customer_id) "
        f"values ('{merged[0]}', '{members[12]}')",
    ]


# what each table is compared on: every column but wall-clock timestamps
COMPARED = {
    "activation.sync_state": (
        "sync_id, identifier, row_hash, status, attempts, last_error, created_by_sync, "
        "updated_as_of, customer_id, generation, last_action, rejections, rejected_hash"
    ),
    "activation.contact_history": (
        "contact_id, sync_id, sync_run_id, run_id, destination, segment_name, channel, "
        "purpose, as_of, customer_id, contact_point, outcome, is_holdout, filter_reason, "
        "error_message, consent_status, consent_captured_at, attempts, arm"
    ),
    "activation.sync_runs": (
        "sync_run_id, run_id, sync_id, destination, segment_name, as_of, status, "
        "audience_rows, planned, already_sent, sent, ok, rejected, retryable, unknown, held_out, "
        "filtered, cast(filtered_by_reason as varchar), output_uri, parked, skipped_parked, "
        "resumed_sync_run_id"
    ),
    "activation.sync_plan": (
        "sync_id, plan_id, as_of, identifier, customer_id, action, row_hash, fields_json, "
        "outcome, error, seq, state_row_hash, state_attempts, state_created_by_sync, "
        "state_customer_id, state_generation, contact_point, consent_status, "
        "consent_captured_at, state_rejections, state_rejected_hash"
    ),
    "activation.sync_sent": "sync_id, plan_id, sync_run_id, run_id, first_seq, last_seq",
}


def _rows(con, table: str, columns: str) -> list[tuple]:
    return sorted(con.execute(f"select {columns} from {table}").fetchall(), key=repr)


def _same_tables(cons: dict, base_dirs: dict[str, Path]) -> dict[str, int]:
    """Assert every activation table holds the same rows on both engines; the row counts."""
    counts = {}
    for table, columns in COMPARED.items():
        duck = _rows(cons["duckdb"], table, columns)
        pg = _rows(cons["postgres"], table, columns)
        if table == "activation.sync_runs":  # the file drop's output_uri names its folder
            pg = [tuple(str(v).replace(str(base_dirs["postgres"]), "<base>") if isinstance(v, str) else v for v in r) for r in pg]  # fmt: skip
            duck = [tuple(str(v).replace(str(base_dirs["duckdb"]), "<base>") if isinstance(v, str) else v for v in r) for r in duck]  # fmt: skip
            pg, duck = sorted(pg, key=repr), sorted(duck, key=repr)
        assert pg == duck, f"{table} differs: {set(pg) ^ set(duck)}"
        counts[table] = len(duck)
    return counts


def test_two_nights_of_activation_write_the_same_tables_on_postgres_and_duckdb(engines, tmp_path):
    bench, cons = engines
    diff_sync, drop_sync = _syncs(bench)
    night1, night2 = bench.AS_OF, bench.AS_OF + dt.timedelta(days=1)
    destinations = {name: RecordingDestination(("7",)) for name in cons}
    base_dirs = {name: tmp_path / name for name in cons}
    outcomes: dict[str, list] = {name: [] for name in cons}
    for name, con in cons.items():
        dest = destinations[name]
        out = run_diff_sync(con, diff_sync, night1, "run-1", dest, chunk_rows=40, ack_rows=80)
        outcomes[name].append(out.as_dict())
        outcomes[name].append(run_sync(con, drop_sync, night1, "run-1", base_dirs[name]).as_dict())
    for statement in _second_night_changes(cons["duckdb"]):
        for con in cons.values():
            con.execute(statement)
    for name, con in cons.items():
        # night 2: the destination goes away at the third chunk; the next run resumes the plan
        crashing = RecordingDestination(("7",), crash_at=3)
        with pytest.raises(ConnectionError):
            run_diff_sync(con, diff_sync, night2, "run-2", crashing, chunk_rows=5, ack_rows=5)
        destinations[name].sent.extend(crashing.sent)
        out = run_diff_sync(
            con, diff_sync, night2, "run-3", destinations[name], chunk_rows=5, ack_rows=10
        )
        outcomes[name].append(out.as_dict())
        outcomes[name].append(run_sync(con, drop_sync, night2, "run-3", base_dirs[name]).as_dict())

    for out in outcomes["postgres"] + outcomes["duckdb"]:
        if out["output_uri"]:
            out["output_uri"] = Path(out["output_uri"]).name
    assert outcomes["postgres"] == outcomes["duckdb"]
    assert destinations["postgres"].sent == destinations["duckdb"].sent, (
        "the same rows, idempotency keys and payload texts, in the same order"
    )
    counts = _same_tables(cons, base_dirs)
    for night in (night1, night2):
        name = f"{drop_sync.name}/{drop_sync.name}__{night.isoformat()}.csv"
        dropped = (base_dirs["duckdb"] / name).read_bytes()
        assert (base_dirs["postgres"] / name).read_bytes() == dropped
        assert dropped.count(b"\n") > MEMBERS // 2

    # the scenario did what it claims, on both engines (DuckDB's answers are Postgres' too)
    duck = cons["duckdb"]
    first, resumed = outcomes["duckdb"][0], outcomes["duckdb"][2]
    assert first["sent"] > 150 and first["rejected"] > 5 and first["held_out"] > 0
    assert first["filtered"] > 0
    assert resumed["resumed_sync_run_id"] and resumed["filtered_by_reason"].get("consent_revoked")
    actions = dict(
        duck.execute(
            "select last_action, count(*) from activation.sync_state "
            "where updated_as_of = ? group by 1",
            [night2],
        ).fetchall()
    )
    assert actions.get("create") and actions.get("update") and actions.get("remove")
    statuses = dict(
        duck.execute("select status, count(*) from activation.sync_state group by 1").fetchall()
    )
    assert statuses.get("parked") and statuses.get("removed") and statuses.get("ok")
    outcomes_recorded = {
        r[0]
        for r in duck.execute("select distinct outcome from activation.contact_history").fetchall()
    }
    assert {"ok", "rejected", "unknown", "held_out", "filtered"} <= outcomes_recorded
    arms = _ids(duck, "select distinct arm from activation.contact_history where arm is not null")
    assert sorted(arms) == ["subject_a", "subject_b"]
    assert counts["activation.sync_plan"] == 0 and counts["activation.contact_history"] > 500


def test_the_diff_and_its_acknowledgements_match_row_for_row(engines):
    """plan_diff and acknowledge (the insert-or-replace path) on a desired relation with a shared
    identifier, a null field and non-ASCII text, across three nights and every mode."""
    _, cons = engines
    nights = [dt.date(2026, 11, 20) + dt.timedelta(days=i) for i in range(4)]
    desired = [
        [("c1", "a@x.org", "Zoë"), ("c2", "b@x.org", None), ("c3", "c@x.org", 'q"u\\o')],
        [("c1", "a@x.org", "Zoë"), ("c2", "b@x.org", "bronze"), ("c4", "d@x.org", "gold")],
        [("c1", "a@x.org", "Zoë"), ("c4", "d@x.org", "gold"), ("c4", "d@x.org", "gold")],
        [("c1", "a@x.org", "Zoë")],
    ]
    modes = ["upsert", "mirror", "update_only", "delete"]
    plans = {}
    for name, con in cons.items():
        con.execute("create table withdrawn (identifier varchar)")
        for night, rows, mode in zip(nights, desired, modes, strict=True):
            con.execute("drop table if exists desired")
            con.execute("create table desired (customer_id varchar, email varchar, tier varchar)")
            for row in rows:
                con.execute("insert into desired values (?, ?, ?)", list(row))
            if mode == "update_only":
                con.execute("insert into withdrawn values ('c2')")
            plan_id = night.isoformat()
            counts = plan_diff(
                con, "s", plan_id, night, "desired", "customer_id", ["email", "tier"], mode,
                max_remove_share=1.0, withdrawn_relation="withdrawn",
            )  # fmt: skip
            planned = con.execute(
                "select identifier, action, row_hash, fields_json, seq from activation.sync_plan "
                "where plan_id = ? order by seq, identifier",
                [plan_id],
            ).fetchall()
            plans.setdefault(name, []).append((dataclasses.astuple(counts), planned))
            acknowledge(
                con, "s", plan_id,
                {i: ("rejected", "bad") if i == "c3" else ("ok", "") for i, *_ in planned},
            )  # fmt: skip
    assert plans["postgres"] == plans["duckdb"]
    first_plan = {i: (h, f) for i, _, h, f, _ in plans["duckdb"][0][1]}
    # the row hash is what DuckDB has always stored (md5 of the texts joined by chr(31), a null
    # as chr(0)), and the fields' JSON is the text make_row sends
    assert first_plan["c2"][0] == hashlib.md5(b"b@x.org\x1f\x00").hexdigest()
    assert first_plan["c1"][0] == hashlib.md5("a@x.org\x1fZoë".encode()).hexdigest()
    assert first_plan["c2"][1] == '{"email":"b@x.org","tier":null}'
    assert make_row("s", "c1", "upsert", {"email": "a@x.org", "tier": "Zoë"}).payload_json.endswith(
        ',"fields":' + first_plan["c1"][1] + "}"
    )
    for table in ("activation.sync_state", "activation.sync_plan"):
        columns = COMPARED[table]
        assert _rows(cons["postgres"], table, columns) == _rows(cons["duckdb"], table, columns)


def test_the_marts_guard_gives_the_same_verdicts(engines):
    bench, cons = engines
    as_of = bench.AS_OF
    verdicts = {}
    for name, con in cons.items():
        con.execute("create schema if not exists audit")
        con.execute(
            "create table audit.dbt_model_builds (model_name varchar not null, as_of date, "
            "run_id varchar, invocation_id varchar not null, status varchar not null, "
            "started_at timestamp not null)"
        )
        rows = [
            ("segment_membership", as_of, "r1", "i1", "success", "2026-11-21 01:00:00"),
            ("customer_360", as_of - dt.timedelta(days=1), "r0", "i0", "success", "2026-11-20 01:00:00"),
            ("customer_360", as_of, "r1", "i1", "started", "2026-11-21 01:00:00"),
            ("consent_state", as_of, "r1", "i1", "error", "2026-11-21 01:00:00"),
        ]  # fmt: skip
        for row in rows:
            con.execute(
                "insert into audit.dbt_model_builds values (?, ?, ?, ?, ?, cast(? as timestamp))",
                list(row),
            )
        with pytest.raises(MartsNotConsistent) as refused:
            check_marts_built_for(con, as_of)
        verdicts[name] = str(refused.value)
    assert verdicts["postgres"] == verdicts["duckdb"]
    assert (
        "never finished" in verdicts["duckdb"]
        and "customer_id_history was never built" in (verdicts["duckdb"])
    )


WEBHOOK_SYNC = """name: webhook__lapsed_high_value
segment: lapsed_high_value
destination: webhook
channel: email
purpose: marketing
mode: mirror
batch_rows: 50
fields:
  email: email
  first_name: first_name
  lifetime_revenue: lifetime_revenue
"""
FILE_SYNC = """name: file_drop__lapsed_high_value
segment: lapsed_high_value
destination: file_drop
channel: email
purpose: marketing
format: csv
fields:
  email: email
  first_name: first_name
"""


def test_the_activation_assets_run_in_dagster_with_the_warehouse_on_postgres(
    engines, pg_db: PgDatabase, tmp_path, monkeypatch
):
    """C360_DBT_TARGET=postgres: the file drop and platform sync assets (and the failed-row
    share check) run in Dagster against Postgres, through the Warehouse resource: the marts
    guard passes, the webhook holds exactly the consented audience, the file holds it too."""
    import dagster as dg

    from orchestration.defs.activation.file_drop import file_drop_syncs
    from orchestration.defs.activation.platform_syncs import failed_row_share, platform_syncs
    from orchestration.defs.resources import FileDropDestination, Warehouse

    bench, cons = engines
    pg = cons["postgres"]
    pg.execute(
        "update marts.segment_membership set segment_name = 'lapsed_high_value' "
        "where segment_name = ?",
        [bench.SEGMENT],
    )
    pg.execute(
        "create table audit.dbt_model_builds (model_name varchar not null, as_of date, "
        "run_id varchar, invocation_id varchar not null, status varchar not null, "
        "started_at timestamp not null)"
    )
    for mart in ("segment_membership", "customer_360", "consent_state", "customer_id_history"):
        pg.execute(
            "insert into audit.dbt_model_builds values (?, ?, 'r1', 'i1', 'success', "
            "timestamp '2026-11-21 01:00:00')",
            [mart, bench.AS_OF],
        )
    folder = tmp_path / "syncs"
    folder.mkdir()
    (folder / "webhook__lapsed_high_value.yml").write_text(WEBHOOK_SYNC)
    (folder / "file_drop__lapsed_high_value.yml").write_text(FILE_SYNC)
    secret = "pg-activation-secret"
    for key, value in {
        "C360_DBT_TARGET": "postgres", "C360_PG_HOST": pg_db.host,
        "C360_PG_PORT": str(pg_db.port), "C360_PG_USER": pg_db.user,
        "C360_PG_PASSWORD": pg_db.password, "C360_PG_DATABASE": pg_db.dbname,
        "C360_HOME": str(tmp_path), "C360_SYNCS_DIR": str(folder),
        "C360_WEBHOOK_SECRET": secret, "C360_DUCKDB_TEMP_DIR": str(tmp_path / "tmp"),
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    expected = set(
        _ids(
            pg,
            "select m.customer_id from marts.segment_membership as m "
            "inner join marts.customer_360 as c on m.customer_id = c.customer_id "
            "inner join marts.consent_state as s on s.contact_point = c.email "
            "and s.channel = 'email' and s.purpose = 'marketing' "
            "where m.segment_name = 'lapsed_high_value' and not m.is_holdout "
            "and s.is_consented and not c.is_erased",
        )
    )
    with WebhookServer(secret) as server:
        monkeypatch.setenv("C360_WEBHOOK_URL", server.url)
        result = dg.materialize(
            [file_drop_syncs, platform_syncs, failed_row_share],
            resources={
                "warehouse": Warehouse(
                    path=str(tmp_path / "unused.duckdb"), landing_dir=str(tmp_path)
                ),
                "file_drop": FileDropDestination(base_dir=str(tmp_path / "outbox")),
            },
            partition_key=bench.AS_OF.isoformat(),
            raise_on_error=False,
        )
        failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success, failed
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {"failed_row_share": True}
        assert len(expected) > 150 and set(server.state.records) == expected
    dropped = tmp_path / "outbox" / "file_drop__lapsed_high_value"
    lines = (dropped / f"file_drop__lapsed_high_value__{bench.AS_OF}.csv").read_text().splitlines()
    assert len(lines) == len(expected) + 1
    runs = pg.execute(
        "select sync_id, status, sent, ok from activation.sync_runs order by sync_id"
    ).fetchall()
    assert runs == [
        ("file_drop__lapsed_high_value", "success", len(expected), len(expected)),
        ("webhook__lapsed_high_value", "success", len(expected), len(expected)),
    ]
    assert not (tmp_path / "unused.duckdb").exists(), "the DuckDB file was never opened"
