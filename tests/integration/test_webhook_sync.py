"""A webhook sync end to end on a real pipeline run: the consent-checked audience reaches a local
contract server through faults, only changes are sent again, holdouts and unconsented people never
reach it — all checked on the server's own stored state."""

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from orchestration.activation.destinations.webhook import WebhookClient, WebhookConfig
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from tests.integration.conftest import AS_OF, make_home
from tests.webhook_server import Faults, WebhookServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]
SECRET = "local-test-secret"

SYNC = """name: webhook__lapsed_high_value
description: Lapsed high-value customers to a webhook platform (test).
segment: lapsed_high_value
destination: webhook
channel: email
purpose: marketing
mode: mirror
identifier: customer_id
batch_rows: 50
fields:
  email: email
  first_name: first_name
"""


def _expected(con) -> set[str]:
    """Consented, reachable, not erased, not held out — from the marts, not the sync's report."""
    return {
        r[0]
        for r in con.execute(
            """
            select m.customer_id
            from marts.segment_membership as m
            inner join marts.customer_360 as c on m.customer_id = c.customer_id
            inner join marts.consent_state as s
                on s.contact_point = c.email and s.channel = 'email' and s.purpose = 'marketing'
            where m.segment_name = 'lapsed_high_value' and not m.is_holdout and not c.is_erased
                and s.consent_status = 'granted' and s.is_consented and not s.is_suppressed
                and not s.is_expired
            """
        ).fetchall()
    }


def test_webhook_sync_delivers_exactly_the_consented_audience_and_resends_nothing(
    tmp_path, monkeypatch
):
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(400, 11, AS_OF, home.landing, home.truth, progress=None)
    assert run_nightly(AS_OF, instance=home.instance, log_level="WARNING").success
    path = tmp_path / "webhook__lapsed_high_value.yml"
    path.write_text(SYNC)
    sync = load_sync(path)
    faults = Faults(rate_limit_first=1, retry_after_seconds=1, server_error_rate=0.1,
                    timeout_rate=0.1, reset_rate=0.05, retryable_rate=0.2, slow_seconds=0.8, seed=5)  # fmt: skip
    with WebhookServer(SECRET, faults) as server, duckdb.connect(str(home.warehouse)) as con:
        config = WebhookConfig(server.url, SECRET, max_rows=sync.batch_rows,
                               timeout_seconds=0.4, backoff_seconds=0.02, max_attempts=6)  # fmt: skip
        client = WebhookClient(config, sync.name)
        expected = _expected(con)
        assert len(expected) > 5
        first = run_diff_sync(con, sync, AS_OF, "run-1", client)
        second = run_diff_sync(con, sync, AS_OF, "run-2", client)  # at most two runs
        assert set(server.state.records) == expected, "exactly the intended audience"
        assert server.state.applications == len(expected), "no row applied twice"
        assert first.held_out > 0 and first.filtered > 0
        held = {
            r[0]
            for r in con.execute(
                "select customer_id from activation.contact_history "
                "where sync_id = ? and outcome = 'held_out'",
                [sync.name],
            ).fetchall()
        }
        assert held and not held & set(server.state.records), "holdouts are recorded, never sent"
        # an unchanged audience sends nothing
        requests_before = server.batch_requests
        history_before = con.execute("select count(*) from activation.contact_history").fetchone()
        third = run_diff_sync(con, sync, AS_OF, "run-3", client)
        assert third.sent == 0 and server.batch_requests == requests_before
        # held-out and filtered decisions are recorded once per as_of, not on every re-sync
        assert third.held_out == first.held_out and third.filtered == first.filtered
        history_after = con.execute("select count(*) from activation.contact_history").fetchone()
        assert history_after == history_before
        runs = con.execute(
            "select count(*), sum(sent) from activation.sync_runs where sync_id = ?", [sync.name]
        ).fetchone()
        assert runs[0] == 3 and runs[1] == first.sent + second.sent
        assert first.ok + second.ok == len(expected)


def test_dry_run_shows_the_diff_of_a_webhook_sync_and_sends_nothing(tmp_path, monkeypatch, capsys):
    from demo.generator import generate
    from orchestration.activation import syncs as syncs_module
    from orchestration.cli import main
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(300, 12, AS_OF, home.landing, home.truth, progress=None)
    assert run_nightly(AS_OF, instance=home.instance, log_level="WARNING").success
    folder = tmp_path / "syncs"
    folder.mkdir()
    (folder / "webhook__lapsed_high_value.yml").write_text(SYNC)
    monkeypatch.setattr(syncs_module, "syncs_dir", lambda: folder)
    assert main(["sync", "--dry-run", "--as-of", AS_OF.isoformat()]) == 0
    out = capsys.readouterr().out
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        expected = _expected(con)
        tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'activation'"
            ).fetchall()
        }
    assert "webhook__lapsed_high_value → webhook, mode mirror" in out
    create_line = next(line for line in out.splitlines() if line.strip().startswith("create"))
    assert int(create_line.split()[-1].replace(",", "")) == len(expected)
    assert "held_out" in out and "filtered:" in out
    assert "sync_state" not in tables and "sync_plan" not in tables, "a dry run writes nothing"


CHILD = """
import datetime as dt, sys
from pathlib import Path
import duckdb
from orchestration.activation.destinations.webhook import WebhookClient, WebhookConfig
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
sync = load_sync(Path(sys.argv[1]))
client = WebhookClient(WebhookConfig(sys.argv[2], sys.argv[3], max_rows=sync.batch_rows), sync.name)
with duckdb.connect(sys.argv[4]) as con:
    run_diff_sync(con, sync, dt.date.fromisoformat(sys.argv[5]), "run-1", client, chunk_rows=6, ack_rows=6)
"""


def test_a_sync_killed_mid_run_resumes_its_plan_and_rechecks_consent(tmp_path, monkeypatch):
    """A process killed in the middle of a sync: the rerun finishes the written plan (not a new
    one), drops a pending person who withdrew consent in between, and the destination ends with
    exactly the audience, each row applied once."""
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(900, 13, AS_OF, home.landing, home.truth, progress=None)
    assert run_nightly(AS_OF, instance=home.instance, log_level="WARNING").success
    path = tmp_path / "webhook__lapsed_high_value.yml"
    path.write_text(
        SYNC.replace("mode: mirror", "mode: upsert").replace("batch_rows: 50", "batch_rows: 3")
    )
    sync = load_sync(path)
    with WebhookServer(SECRET, Faults(delay_seconds=0.25)) as server:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), server.url, SECRET, str(home.warehouse),
             AS_OF.isoformat()],
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while server.batch_requests < 5 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        child.kill()  # SIGKILL: no cleanup, no final acknowledgement
        child.wait()
        assert server.batch_requests >= 5, "the child died before it sent anything"
        with duckdb.connect(str(home.warehouse)) as con:
            acked = con.execute(
                "select count(*) from activation.sync_state where sync_id = ? and status = 'ok'",
                [sync.name],
            ).fetchone()[0]
            pending = [
                r[0]
                for r in con.execute(
                    "select identifier from activation.sync_plan where sync_id = ? "
                    "and outcome is null and action = 'create' order by identifier",
                    [sync.name],
                ).fetchall()
            ]
            assert acked >= 6 and len(pending) >= 2, (
                "the crash left an acknowledged and a pending part"
            )
            # a person the crashed run planned but never sent withdraws consent before the rerun
            victim = next(p for p in reversed(pending) if p not in server.state.records)
            con.execute(
                """
                update marts.consent_state set consent_status = 'revoked', is_consented = false
                where channel = 'email' and purpose = 'marketing' and contact_point =
                    (select email from marts.customer_360 where customer_id = ?)
                """,
                [victim],
            )
            expected = _expected(con)
            assert victim not in expected
            client = WebhookClient(WebhookConfig(server.url, SECRET, max_rows=3), sync.name)
            requests_before = server.batch_requests
            resumed = run_diff_sync(con, sync, AS_OF, "run-2", client, chunk_rows=6, ack_rows=6)
            history = con.execute(
                "select outcome, filter_reason, error_message from activation.contact_history "
                "where sync_id = ? and customer_id = ? and run_id = 'run-2' order by 1",
                [sync.name, victim],
            ).fetchall()
            left = con.execute(
                "select count(*) from activation.sync_plan where outcome is null"
            ).fetchone()[0]
    assert victim not in server.state.records, "consent is re-checked when a plan resumes"
    assert resumed.dropped_at_resume >= 1
    # its pending create was turned into a removal (a crash may have left it applied), and
    # the person is recorded as filtered by this run's consent check
    assert history == [
        ("filtered", "consent_revoked", None),
        ("ok", None, "removed"),
    ]
    assert set(server.state.records) == expected, "exactly the intended audience"
    upserts = [i for op, i in server.state.applied if op == "upsert"]
    assert sorted(upserts) == sorted(expected), "each upsert applied once, the victim's never"
    assert server.state.applied.count(("delete", victim)) == 1, "the victim's removal, once"
    # the resumed run resent only what was not acknowledged (not the acknowledged part)
    assert resumed.sent <= len(expected) - acked + 6
    assert server.batch_requests > requests_before and left == 0


def test_a_merge_between_two_syncs_leaves_one_profile_at_the_destination(pipeline, tmp_path):
    """Two synced customers merge (the marts as a merge leaves them: the retired id gone from
    customer_360 and the segment, mapped in customer_id_history): the next sync removes the
    retired id at the destination, so one profile remains — in upsert mode too."""
    import shutil

    home, _ = pipeline
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(home.warehouse, copy)
    path = tmp_path / "webhook__lapsed_high_value.yml"
    path.write_text(SYNC.replace("mode: mirror", "mode: upsert"))
    sync = load_sync(path)
    with WebhookServer(SECRET) as server, duckdb.connect(str(copy)) as con:
        client = WebhookClient(WebhookConfig(server.url, SECRET, max_rows=50), sync.name)
        first_expected = _expected(con)
        survivor, retired = sorted(first_expected)[:2]
        run_diff_sync(con, sync, AS_OF, "run-1", client)
        assert {survivor, retired} <= set(server.state.records)
        con.execute(
            "insert into marts.customer_id_history (retired_customer_id, current_customer_id) "
            "values (?, ?)",
            [retired, survivor],
        )
        con.execute("delete from marts.segment_membership where customer_id = ?", [retired])
        con.execute("delete from marts.customer_360 where customer_id = ?", [retired])
        second = run_diff_sync(con, sync, AS_OF, "run-2", client)
        expected = _expected(con)
        removal = con.execute(
            "select outcome, error_message from activation.contact_history "
            "where run_id = 'run-2' and customer_id = ?",
            [retired],
        ).fetchall()
    assert expected == first_expected - {retired}
    assert set(server.state.records) == expected, "one profile: the retired id is gone"
    assert second.sent == 1 and removal == [("ok", "removed")]
