"""Defects of the activation engine found by a test against a server written from the published
contract alone (issue 16, core 5) — each test fails on the code before its fix:
identifiers percent-encoded on read-back, C360_WEBHOOK_MAX_IN_FLIGHT honoured, permanent rejects
parked after the sync's `max_attempts`, the failed-row share check blocking."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.activation.destinations.rows import make_row
from orchestration.activation.destinations.webhook import (
    WebhookClient,
    WebhookConfig,
    WebhookConfigError,
)
from tests.webhook_server import Faults, WebhookServer

SECRET = "defects-test-secret"
BENCH_PATH = Path(__file__).resolve().parents[2] / "bench" / "activation_sync.py"


# --- identifiers percent-encoded -----------------------------------------------------------


@pytest.mark.parametrize(
    "identifier", ["a#b@x.org", "a?b=c@x.org", "a/b@x.org", "50%off@x.org", "a b@x.org"]
)
def test_a_lost_delete_is_not_marked_applied_while_the_record_is_still_held(identifier):
    """A delete whose request is lost (nothing applied, no answer) is read back: the read-back
    must ask for this identifier — percent-encoded as one path segment — and find it still held,
    so the row does not end ok. Unencoded, `a#b@x.org` was read back as `a` (the rest a
    fragment): 404, so the delete was 'reconciled' while the record stayed."""
    with WebhookServer(SECRET, Faults(slow_seconds=0.4)) as server:
        config = WebhookConfig(
            server.url, SECRET, timeout_seconds=0.15, backoff_seconds=0.01, max_attempts=2
        )
        client = WebhookClient(config, "sync_a")
        added = make_row("sync_a", identifier, "upsert", {"email": identifier})
        assert client.send([added])[added.idempotency_key].status == "ok"
        assert identifier in server.state.records
        server.faults.lost_identifiers = frozenset({identifier})
        delete = make_row("sync_a", identifier, "delete", {}, generation=1)
        outcome = client.send([delete])[delete.idempotency_key]
        assert identifier in server.state.records, "the delete was lost"
        assert outcome.status != "ok", f"marked {outcome.status} ({outcome.reason})"
        # and a held upsert is reconciled by the same read-back
        server.faults.lost_identifiers = frozenset()
        assert client._read_back(added) is True


def test_the_read_back_url_encodes_the_identifier_and_keeps_the_query():
    config = WebhookConfig("http://dest/base?token=t1", SECRET)
    assert config.record_url("a#b@x.org") == "http://dest/base/v1/records/a%23b%40x.org?token=t1"
    assert config.record_url("x/y%z ü") == "http://dest/base/v1/records/x%2Fy%25z%20%C3%BC?token=t1"


# --- max in flight honoured ----------------------------------------------------------------


def _sync(tmp_path, extra: str = ""):
    from orchestration.activation.syncs import load_sync

    path = tmp_path / "webhook__lapsed_high_value.yml"
    path.write_text(
        "name: webhook__lapsed_high_value\nsegment: lapsed_high_value\ndestination: webhook\n"
        "channel: email\npurpose: marketing\nbatch_rows: 10\n"
        f"fields:\n  email: email\n{extra}"
    )
    return load_sync(path)


@pytest.mark.parametrize("limit", [1, 3])
def test_max_in_flight_from_env_reaches_the_client_the_sync_gets(tmp_path, monkeypatch, limit):
    """C360_WEBHOOK_MAX_IN_FLIGHT was read by WebhookConfig.from_env, then lost when the
    destination factory built the sync's config from parts (always 2 in flight)."""
    from orchestration.activation.destinations.factory import make_destination

    monkeypatch.setenv("C360_WEBHOOK_URL", "http://dest")
    monkeypatch.setenv("C360_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("C360_WEBHOOK_MAX_IN_FLIGHT", str(limit))
    client = make_destination(_sync(tmp_path), lambda message: None)
    assert client.config.max_in_flight == limit
    assert client.config.max_rows == 10, "the sync's own limit still applies"


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_max_in_flight_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("C360_WEBHOOK_URL", "http://dest")
    monkeypatch.setenv("C360_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("C360_WEBHOOK_MAX_IN_FLIGHT", value)
    with pytest.raises(WebhookConfigError, match="C360_WEBHOOK_MAX_IN_FLIGHT"):
        WebhookConfig.from_env()


@pytest.mark.parametrize("limit", [1, 2])
def test_the_destination_never_sees_more_batches_at_once_than_max_in_flight(monkeypatch, limit):
    """Measured at the server: batches answered slowly (0.3 s, so they pile up) never pass the
    limit (the old client always had 2 in flight, so limit 1 fails on it)."""
    monkeypatch.setenv("C360_WEBHOOK_MAX_IN_FLIGHT", str(limit))
    rows = [make_row("sync_a", f"c{i:03d}", "upsert", {"email": f"{i}@x.org"}) for i in range(40)]
    with WebhookServer(SECRET, Faults(delay_seconds=0.3)) as server:
        client = WebhookClient(WebhookConfig(server.url, SECRET, max_rows=4), "sync_a")
        outcomes = client.send(rows)
    assert all(o.status == "ok" for o in outcomes.values()) and server.batch_requests == 10
    # The bound is the property; whether a loaded machine starts the second batch in time is not.
    assert 1 <= server.max_in_flight <= limit


# --- the failed-row share check blocking ---------------------------------------------------


@pytest.mark.parametrize("failed, passed", [(16, False), (53, False), (3, True)])
def test_a_failed_row_share_over_the_limit_fails_the_run_and_stops_what_is_downstream(
    tmp_path, monkeypatch, failed, passed
):
    """Runs with 16 % and 53 % failed rows reported success (the check was not blocking): now
    the check fails the run, what depends on the syncs is not built, and 3 % passes."""
    import dagster as dg
    import duckdb

    from orchestration.activation.records import ensure_tables
    from orchestration.defs.activation.platform_syncs import KEY, failed_row_share
    from orchestration.defs.resources import Warehouse

    monkeypatch.delenv("C360_SYNC_MAX_FAILED_SHARE", raising=False)
    spec = next(iter(failed_row_share.check_specs))
    assert spec.blocking, "failed_row_share is a blocking check"
    warehouse = tmp_path / "warehouse.duckdb"

    @dg.asset(key=KEY)
    def syncs(context):  # what platform_syncs records of its run
        with duckdb.connect(str(warehouse)) as con:
            ensure_tables(con)
            con.execute(
                "insert into activation.sync_runs (sync_run_id, run_id, sync_id, destination, "
                "segment_name, as_of, status, audience_rows, planned, already_sent, sent, ok, "
                "rejected, retryable, unknown, held_out, filtered, started_at, finished_at, "
                "duration_seconds) values ('r1', ?, 'webhook__a', 'webhook', 'seg', "
                "date '2026-11-20', 'partial', 100, 100, 0, 100, ?, ?, 0, 0, 0, 0, now(), now(), 1)",
                [context.run.run_id, 100 - failed, failed],
            )

    @dg.asset(deps=[KEY])
    def downstream() -> None:
        pass

    result = dg.materialize(
        [syncs, failed_row_share, downstream],
        resources={"warehouse": Warehouse(path=str(warehouse), landing_dir=str(tmp_path))},
        raise_on_error=False,
    )
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed is passed
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert ("downstream" in built) is passed, "a failing check stops what is downstream"
    assert result.success is passed, "a run over the limit does not report success"


# --- permanent rejects parked --------------------------------------------------------------


def _bench():
    """bench/activation_sync.py (not a package): its synthesised marts and sync definition."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "activation_sync.py"
    spec = importlib.util.spec_from_file_location("activation_sync_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RejectingDestination:
    """Applies every row but those of `refused`, which it rejects for good (a permanent reject,
    e.g. an address the platform will never take); counts what it was sent."""

    def __init__(self, refused: set[str]) -> None:
        self.refused, self.sent = refused, []

    def send(self, rows):
        from orchestration.activation.destinations.rows import Outcome

        rows = list(rows)
        self.sent.extend(row.identifier for row in rows)
        return {
            row.idempotency_key: Outcome("rejected", "invalid email", 1)
            if row.identifier in self.refused
            else Outcome("ok", "", 1)
            for row in rows
        }


@pytest.mark.parametrize("max_attempts", [3, 1])
def test_a_permanently_rejected_row_is_parked_after_max_attempts_with_its_reason(max_attempts):
    """A row the destination rejects was resent every night with no cap. Now it is sent at most
    max_attempts times with the same fields, then parked (sync_state status `parked`, the reason
    in last_error, contact_history saying so, sync_runs counting it) and not sent again until
    its fields change."""
    import dataclasses
    import datetime as dt

    import duckdb

    from orchestration.activation.diff_runner import run_diff_sync

    bench = _bench()
    con = duckdb.connect()
    bench.synthesise(con, 60)
    sync = dataclasses.replace(bench.SYNC, max_attempts=max_attempts)
    victim = con.execute(
        "select min(customer_id) from marts.segment_membership where not is_holdout"
    ).fetchone()[0]
    destination = RejectingDestination({victim})
    outs = [
        run_diff_sync(
            con, sync, bench.AS_OF + dt.timedelta(days=night), f"run-{night}", destination
        )
        for night in range(max_attempts + 2)
    ]
    assert destination.sent.count(victim) == max_attempts, "sent max_attempts times, no more"
    state = con.execute(
        "select status, last_error, rejections from activation.sync_state where identifier = ?",
        [victim],
    ).fetchone()
    assert state == ("parked", "invalid email", max_attempts)
    history = con.execute(
        "select run_id, outcome, error_message from activation.contact_history "
        "where customer_id = ? order by recorded_at",
        [victim],
    ).fetchall()
    assert [h[1] for h in history] == ["rejected"] * max_attempts
    assert history[-1][2] == f"parked after {max_attempts} rejections: invalid email"
    assert all(not h[2].startswith("parked") for h in history[:-1])
    runs = con.execute(
        "select run_id, rejected, parked, skipped_parked, status from activation.sync_runs "
        "order by started_at"
    ).fetchall()
    parked_run = f"run-{max_attempts - 1}"
    assert [(r[0], r[2]) for r in runs if r[2]] == [(parked_run, 1)]
    assert [r[3] for r in runs] == [0] * max_attempts + [1, 1]
    assert outs[-1].sent == 0 and outs[-1].skipped_parked == 1
    # its fields change: sent again, counted from one
    con.execute(
        "update marts.customer_360 set first_name = 'Changed' where customer_id = ?", [victim]
    )
    run_diff_sync(con, sync, bench.AS_OF + dt.timedelta(days=9), "run-changed", destination)
    assert destination.sent.count(victim) == max_attempts + 1
    expected = ("parked", 1) if max_attempts == 1 else ("rejected", 1)
    assert (
        con.execute(
            "select status, rejections from activation.sync_state where identifier = ?", [victim]
        ).fetchone()
        == expected
    )
    # and once the platform takes it, the count starts over
    destination.refused.clear()
    con.execute(
        "update marts.customer_360 set first_name = 'Again' where customer_id = ?", [victim]
    )
    run_diff_sync(con, sync, bench.AS_OF + dt.timedelta(days=10), "run-ok", destination)
    assert con.execute(
        "select status, rejections, rejected_hash from activation.sync_state where identifier = ?",
        [victim],
    ).fetchone() == ("ok", 0, None)


def test_a_removal_rejected_max_attempts_times_is_parked_not_resent_every_night():
    import datetime as dt

    import duckdb

    from orchestration.activation.diff import acknowledge, plan_diff

    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        "create table marts.customer_id_history "
        "(retired_customer_id varchar, current_customer_id varchar)"
    )
    con.execute("create table desired as select 'c1' as customer_id, 'a@x.org' as email")
    day = dt.date(2026, 11, 20)

    def plan(night: int, mode: str = "upsert") -> dict[str, str]:
        plan_id = f"p{night}"
        plan_diff(con, "s", plan_id, day + dt.timedelta(days=night), "desired", "customer_id",
                  ["email"], mode, withdrawn_relation="withdrawn")  # fmt: skip
        return dict(
            con.execute(
                "select identifier, action from activation.sync_plan where plan_id = ?", [plan_id]
            ).fetchall()
        )

    con.execute("create table withdrawn (identifier varchar)")
    assert plan(0) == {"c1": "create"}
    acknowledge(con, "s", "p0", {"c1": ("ok", "")})
    con.execute("insert into withdrawn values ('c1')")  # consent withdrawn: a forced removal
    con.execute("delete from desired")
    for night in (1, 2, 3):
        assert plan(night) == {"c1": "remove"}, f"night {night}: retried"
        acknowledge(con, "s", f"p{night}", {"c1": ("rejected", "profile locked")})
    assert plan(4) == {} and plan(5, "delete") == {}, "parked: not resent"
    assert con.execute(
        "select status, last_error, last_action from activation.sync_state"
    ).fetchone() == ("parked", "profile locked", "remove")


def test_max_attempts_is_a_sync_yaml_field(tmp_path):
    from orchestration.activation.sync_definition import SyncDefinitionError

    assert _sync(tmp_path).max_attempts == 3
    assert _sync(tmp_path, "max_attempts: 5\n").max_attempts == 5
    for bad in ("0", "true", "two"):
        with pytest.raises(SyncDefinitionError, match="max_attempts"):
            _sync(tmp_path, f"max_attempts: {bad}\n")


# --- a killed sync's records ---------------------------------------------------------------

KILLED_CHILD = """
import importlib.util, os, signal, sys
import duckdb
from orchestration.activation.destinations.webhook import WebhookClient, WebhookConfig
from orchestration.activation.diff_runner import run_diff_sync

spec = importlib.util.spec_from_file_location("bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
client = WebhookClient(WebhookConfig(sys.argv[2], sys.argv[3], max_rows=7), bench.SYNC.name)


class Killed:
    # the destination applies a third chunk, then the process is killed (SIGKILL: no cleanup)
    chunks = 0

    def send(self, rows):
        return self._after(client.send(rows))

    def send_encoded(self, rows):
        return self._after(client.send_encoded(rows))

    def _after(self, outcomes):
        Killed.chunks += 1
        if Killed.chunks == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return outcomes


with duckdb.connect(sys.argv[4]) as con:
    run_diff_sync(con, bench.SYNC, bench.AS_OF, "run-1", Killed(), chunk_rows=20, ack_rows=40)
"""


def test_a_killed_sync_leaves_its_applied_rows_and_run_in_the_records(tmp_path):
    """SIGKILL mid-sync left no sync_runs row and none of the rows it had applied (but not yet
    acknowledged) in contact_history. Now its sync_runs row exists from the start (`running`);
    the run that resumes its plan records every row the killed run sent under the killed run
    (acknowledged ones `ok`, the rest `unknown`, "interrupted"), marks it `interrupted` with
    those counts, and carries a resumed marker naming the plan it finished."""
    import hashlib
    import subprocess
    import sys
    from pathlib import Path

    import duckdb

    from orchestration.activation.diff_runner import run_diff_sync

    bench = _bench()
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        bench.synthesise(con, 100)
    sync = bench.SYNC
    killed_id = hashlib.md5(f"run-1|{sync.name}".encode()).hexdigest()[:16]
    with WebhookServer(SECRET) as server:
        child = subprocess.run(
            [sys.executable, "-c", KILLED_CHILD, str(BENCH_PATH), server.url, SECRET,
             str(warehouse)],
            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert child.returncode == -9, child.stderr
        applied_by_killed = {i for op, i in server.state.applied if op == "upsert"}
        assert len(applied_by_killed) == 60, "three chunks of 20 reached the destination"
        with duckdb.connect(str(warehouse)) as con:
            left = con.execute(
                "select run_id, status from activation.sync_runs where sync_run_id = ?",
                [killed_id],
            ).fetchall()
            assert left == [("run-1", "running")], "the killed run's row is there"
            client = WebhookClient(WebhookConfig(server.url, SECRET, max_rows=7), sync.name)
            resumed = run_diff_sync(con, sync, bench.AS_OF, "run-2", client, chunk_rows=20)
            history = {
                (run_id, customer_id): (outcome, error)
                for run_id, customer_id, outcome, error in con.execute(
                    "select run_id, customer_id, outcome, error_message "
                    "from activation.contact_history where outcome not in ('held_out', 'filtered')"
                ).fetchall()
            }
            runs = {
                row[0]: row[1:]
                for row in con.execute(
                    "select run_id, status, sent, ok, unknown, resumed_sync_run_id "
                    "from activation.sync_runs"
                ).fetchall()
            }
            audience = {
                r[0]
                for r in con.execute(
                    "select customer_id from activation.sync_state where status = 'ok'"
                ).fetchall()
            }
            journal = con.execute("select count(*) from activation.sync_sent").fetchone()[0]
    killed_rows = {c: v for (run, c), v in history.items() if run == "run-1"}
    assert applied_by_killed <= set(killed_rows), "every row the killed run applied is recorded"
    acked = sum(1 for outcome, _ in killed_rows.values() if outcome == "ok")
    interrupted = [e for outcome, e in killed_rows.values() if outcome == "unknown"]
    assert len(killed_rows) == 60 and acked + len(interrupted) == 60 and interrupted
    assert all(e.startswith("interrupted:") for e in interrupted)
    assert runs["run-1"] == ("interrupted", 60, acked, len(interrupted), None)
    assert runs["run-2"][0] == "success" and runs["run-2"][4] == killed_id, "resumed marker"
    # the interrupted rows were resent with their keys: recorded ok by the resuming run, and
    # applied once at the destination
    assert all(history[("run-2", c)][0] == "ok" for c, v in killed_rows.items() if v[0] != "ok")
    assert set(server.state.records) == audience and server.state.applications == len(audience)
    assert resumed.sent == len(audience) - acked and journal == 0
