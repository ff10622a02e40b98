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
                "select lower(customer_id), error_message from activation.contact_history "
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
