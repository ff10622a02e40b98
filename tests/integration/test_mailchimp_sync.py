"""Mailchimp specifics on a real pipeline run, against a local server written from Mailchimp's
published Marketing API (tests/servers/mailchimp.py): a withdrawal unsubscribes the member (found
by its subscriber hash), a platform-side unsubscribe is reported back, and a sync killed with
SIGKILL mid-run resumes without writing a member twice. Checked on the server's own state; the
convergence under faults is tests/integration/test_platform_sync_convergence.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from tests.integration.conftest import AS_OF
from tests.integration.platform_sync_helpers import sync_yaml
from tests.integration.test_webhook_sync import _expected
from tests.servers.mailchimp import MailchimpServer, subscriber_hash

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]
KEY = "local-mailchimp-key-not-real-us6"
LIST = "a1b2c3d4e5"


def _sync_yaml(url: str, batch_rows: int = 7, mode: str = "mirror") -> str:
    return (
        sync_yaml("mailchimp", url)
        .replace("batch_rows: 7", f"batch_rows: {batch_rows}")
        .replace("mode: mirror", f"mode: {mode}")
    )


def _emails(con, customer_ids: set[str]) -> set[str]:
    rows = con.execute(
        "select lower(email) from marts.customer_360 where list_contains(?, customer_id)",
        [sorted(customer_ids)],
    ).fetchall()
    return {r[0] for r in rows}


def test_a_mailchimp_withdrawal_unsubscribes_and_a_platform_unsubscribe_is_reported(
    pipeline, tmp_path, monkeypatch
):
    home, _ = pipeline
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(home.warehouse, warehouse)
    monkeypatch.setenv("TEST_MAILCHIMP_KEY", KEY)
    with duckdb.connect(str(warehouse)) as con, MailchimpServer(KEY, LIST) as server:
        expected = _emails(con, _expected(con))
        path = Path(tmp_path) / "mailchimp__lapsed_high_value.yml"
        path.write_text(_sync_yaml(server.url))
        sync = load_sync(path)
        client = registry.build(sync)
        run_diff_sync(con, sync, AS_OF, "run-1", client)
        subscribed = server.with_status("subscribed")
        # a person withdraws consent: the next run unsubscribes them at Mailchimp
        leaver = sorted(expected)[0]
        con.execute(
            "update marts.consent_state set consent_status = 'revoked', is_consented = false "
            "where channel = 'email' and purpose = 'marketing' and lower(contact_point) = ?",
            [leaver],
        )
        second = run_diff_sync(con, sync, AS_OF, "run-2", client)
        # and someone unsubscribes at Mailchimp itself: reported back for consent
        quitter = sorted(expected)[1]
        server.unsubscribe(quitter)
        reported = {u.identifier.lower() for u in client.unsubscribes()}
    assert subscribed == expected
    assert second.sent == 1 and server.with_status("unsubscribed") == {leaver, quitter}
    assert server.members[subscriber_hash(leaver)]["status"] == "unsubscribed", "by its hash"
    assert reported == {leaver, quitter}


CHILD = """
import datetime as dt, os, sys
from pathlib import Path
import duckdb
from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
os.environ["TEST_MAILCHIMP_KEY"] = sys.argv[2]
sync = load_sync(Path(sys.argv[1]))
with duckdb.connect(sys.argv[3]) as con:
    run_diff_sync(con, sync, dt.date.fromisoformat(sys.argv[4]), "run-1", registry.build(sync),
                  chunk_rows=6, ack_rows=6)
"""


def test_a_mailchimp_sync_killed_mid_run_resumes_without_writing_a_member_twice(
    pipeline, tmp_path, monkeypatch
):
    import subprocess
    import sys
    import time

    home, _ = pipeline
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(home.warehouse, warehouse)
    monkeypatch.setenv("TEST_MAILCHIMP_KEY", KEY)
    with MailchimpServer(KEY, LIST) as server:
        original = server._batch

        def slow_batch(body):
            time.sleep(0.15)  # the kill lands between a request and its answer
            return original(body)

        server._batch = slow_batch  # type: ignore[method-assign]
        path = Path(tmp_path) / "mailchimp__lapsed_high_value.yml"
        path.write_text(_sync_yaml(server.url, batch_rows=3, mode="upsert"))
        sync = load_sync(path)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), KEY, str(warehouse), AS_OF.isoformat()],
            cwd=Path(__file__).resolve().parents[2],
        )
        deadline = time.monotonic() + 120
        while sum(server.applied.values()) < 9 and child.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.kill()  # SIGKILL: no cleanup, no final acknowledgement
        child.wait()
        assert sum(server.applied.values()) >= 9, "the child died before it sent anything"
        with duckdb.connect(str(warehouse)) as con:
            resumed = run_diff_sync(con, sync, AS_OF, "run-2", registry.build(sync),
                                    chunk_rows=6, ack_rows=6)  # fmt: skip
            expected = _emails(con, _expected(con))
            statuses = dict(
                con.execute(
                    "select status, count(*) from activation.sync_runs where sync_id = ? "
                    "group by 1",
                    [sync.name],
                ).fetchall()
            )
            interrupted = con.execute(
                "select count(*) from activation.contact_history where run_id = 'run-1' "
                "and outcome = 'unknown' and error_message like 'interrupted%'"
            ).fetchone()[0]
    assert resumed.resumed_sync_run_id is not None, "the rerun finished the killed run's plan"
    assert statuses == {"interrupted": 1, "success": 1}
    assert interrupted >= 1, "the killed run's unanswered rows are recorded under it"
    assert server.with_status("subscribed") == expected, "exactly the consented audience"
    assert max(server.applied.values()) == 1, "no member written twice across the kill"
