"""A Mailchimp sync end to end on a real pipeline run, against a local server written from
Mailchimp's published Marketing API (tests/servers/mailchimp.py): under >= 20 % injected faults
(429 + Retry-After, 5xx, applied then answered too late) and partial success (200 with per-member
errors), two runs leave exactly the consented audience subscribed, no member write applied twice,
nobody outside the consented audience sent; a withdrawal unsubscribes the member; a platform-side
unsubscribe is reported back. Checked on the server's own stored state."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import duckdb
import pytest

from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from tests.integration.conftest import AS_OF
from tests.integration.test_webhook_sync import _expected
from tests.servers.common import Faults
from tests.servers.mailchimp import MailchimpServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]
KEY = "local-mailchimp-key-not-real-us6"
LIST = "a1b2c3d4e5"

SYNC = """name: mailchimp__lapsed_high_value
description: Lapsed high-value customers to a Mailchimp audience (test).
segment: lapsed_high_value
destination: mailchimp
channel: email
purpose: marketing
mode: mirror
identifier: email
batch_rows: 7
max_in_flight: 3
fields:
  email: email
  FNAME: first_name
config:
  endpoint: {url}/3.0
  list_id: a1b2c3d4e5
  api_key_env: C360_TEST_MAILCHIMP_KEY
  timeout_seconds: 0.4
"""


def _emails(con, customer_ids: set[str]) -> set[str]:
    rows = con.execute(
        "select lower(email) from marts.customer_360 where list_contains(?, customer_id)",
        [sorted(customer_ids)],
    ).fetchall()
    return {r[0] for r in rows}


def test_mailchimp_sync_converges_to_the_consented_audience_under_faults(
    pipeline, tmp_path, monkeypatch
):
    home, _ = pipeline
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(home.warehouse, warehouse)
    faults = Faults(rate_limit_rate=0.09, server_error_rate=0.09, timeout_rate=0.09,
                    retry_after_seconds=1, slow_seconds=0.9, seed=8)  # fmt: skip
    monkeypatch.setenv("C360_TEST_MAILCHIMP_KEY", KEY)
    with duckdb.connect(str(warehouse)) as con:
        expected = _emails(con, _expected(con))
        invalid = set(sorted(expected)[:2])
        with MailchimpServer(KEY, LIST, faults, invalid_emails=invalid) as server:
            path = Path(tmp_path) / "mailchimp__lapsed_high_value.yml"
            path.write_text(SYNC.format(url=server.url))
            sync = load_sync(path)
            client = registry.build(sync)
            client.settings = dataclasses.replace(client.settings, backoff_seconds=0.02,
                                                  max_attempts=6)  # fmt: skip
            first = run_diff_sync(con, sync, AS_OF, "run-1", client)
            second = run_diff_sync(con, sync, AS_OF, "run-2", client)
            share = sum(server.faults_injected.values()) / server.write_requests
            subscribed = server.with_status("subscribed")
            everyone = {m["email_address"].lower() for m in server.members.values()}
            applied_once = max(server.applied.values()) == 1
            rejected = con.execute(
                "select lower(contact_point), error_message from activation.contact_history "
                "where sync_id = ? and outcome = 'rejected' and run_id = 'run-2'",
                [sync.name],
            ).fetchall()
            # a person withdraws consent: the next run unsubscribes them at Mailchimp
            leaver = sorted(expected - invalid)[0]
            con.execute(
                "update marts.consent_state set consent_status = 'revoked', is_consented = false "
                "where channel = 'email' and purpose = 'marketing' and lower(contact_point) = ?",
                [leaver],
            )
            server.faults = Faults()
            third = run_diff_sync(con, sync, AS_OF, "run-3", client)
            # and someone unsubscribes at Mailchimp itself: reported back for consent
            quitter = sorted(expected - invalid)[1]
            server.unsubscribe(quitter)
            reported = {u.identifier.lower() for u in client.unsubscribes()}
    assert len(expected) > 20
    assert share >= 0.2 and min(server.faults_injected.values()) > 0, server.faults_injected
    assert subscribed == expected - invalid, "exactly the consented audience"
    assert everyone <= expected, "nobody outside the consented audience reached Mailchimp"
    assert applied_once, "no member write applied twice"
    assert {r[0] for r in rejected} == invalid
    assert all("looks fake or invalid" in r[1] for r in rejected), "Mailchimp's own error"
    assert first.held_out > 0 and first.filtered > 0
    assert second.sent == first.sent - first.ok
    assert third.sent >= 1 and leaver in server.with_status("unsubscribed")
    assert reported == {leaver, quitter}


CHILD = """
import datetime as dt, os, sys
from pathlib import Path
import duckdb
from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
os.environ["C360_TEST_MAILCHIMP_KEY"] = sys.argv[2]
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
    monkeypatch.setenv("C360_TEST_MAILCHIMP_KEY", KEY)
    with MailchimpServer(KEY, LIST) as server:
        original = server._batch

        def slow_batch(body):
            time.sleep(0.15)  # the kill lands between a request and its answer
            return original(body)

        server._batch = slow_batch  # type: ignore[method-assign]
        path = Path(tmp_path) / "mailchimp__lapsed_high_value.yml"
        path.write_text(
            SYNC.format(url=server.url)
            .replace("batch_rows: 7", "batch_rows: 3")
            .replace("mode: mirror", "mode: upsert")
        )
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
