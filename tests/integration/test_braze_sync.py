"""A Braze sync end to end on a real pipeline run, against a local server written from Braze's
published API (tests/servers/braze.py): under >= 20 % injected faults (429 + Retry-After, 5xx,
applied then answered too late) and partial success (201 with errors[] by index), two runs leave
exactly the consented audience subscribed to the group, no row applied twice, nobody outside the
consented audience ever sent; a sync killed with SIGKILL mid-run resumes without applying a row
twice. Checked on the server's own stored state."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from tests.integration.conftest import AS_OF
from tests.integration.test_webhook_sync import _expected
from tests.servers.braze import BrazeServer
from tests.servers.common import Faults

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]
KEY = "local-braze-key-not-real"
GROUP = "sg-lapsed"

SYNC = """name: braze__lapsed_high_value
description: Lapsed high-value customers to a Braze subscription group (test).
segment: lapsed_high_value
destination: braze
channel: email
purpose: marketing
mode: mirror
identifier: customer_id
batch_rows: {batch_rows}
max_in_flight: 3
fields:
  email: email
  first_name: first_name
config:
  endpoint: {url}
  api_key_env: C360_TEST_BRAZE_KEY
  subscription_group_id: sg-lapsed
  timeout_seconds: 0.4
"""


def _client(sync, monkeypatch):
    """The sync's client as the registry builds it (key from the env var the YAML names), with
    short backoffs for the test."""
    monkeypatch.setenv("C360_TEST_BRAZE_KEY", KEY)
    client = registry.build(sync)
    client.settings = dataclasses.replace(client.settings, backoff_seconds=0.02, max_attempts=6)
    return client


def _warehouse(pipeline, tmp_path: Path) -> Path:
    home, _ = pipeline
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(home.warehouse, copy)
    return copy


def test_braze_sync_converges_to_the_consented_audience_under_faults(
    pipeline, tmp_path, monkeypatch
):
    warehouse = _warehouse(pipeline, tmp_path)
    faults = Faults(rate_limit_rate=0.09, server_error_rate=0.09, timeout_rate=0.09,
                    retry_after_seconds=1, slow_seconds=0.9, seed=5)  # fmt: skip
    with duckdb.connect(str(warehouse)) as con:
        expected = _expected(con)
        invalid = set(sorted(expected)[:2])  # Braze refuses their objects (errors[] by index)
        with BrazeServer(KEY, faults, invalid_ids=invalid) as server:
            path = tmp_path / "braze__lapsed_high_value.yml"
            path.write_text(SYNC.format(url=server.url, batch_rows=6))
            sync = load_sync(path)
            client = _client(sync, monkeypatch)
            first = run_diff_sync(con, sync, AS_OF, "run-1", client)
            second = run_diff_sync(con, sync, AS_OF, "run-2", client)
            rejected = con.execute(
                "select customer_id, error_message from activation.contact_history "
                "where sync_id = ? and outcome = 'rejected' and run_id = 'run-2'",
                [sync.name],
            ).fetchall()
    assert len(expected) > 20
    share = sum(server.faults_injected.values()) / server.write_requests
    assert share >= 0.2 and min(server.faults_injected.values()) > 0, server.faults_injected
    assert server.subscribed(GROUP) == expected - invalid, "exactly the consented audience"
    assert set(server.users) <= expected, "nobody outside the consented audience reached Braze"
    assert max(server.applied.values()) == 1, "no row applied twice"
    assert {r[0] for r in rejected} == invalid
    assert all("Invalid 'email'" in r[1] for r in rejected), "Braze's own reason, recorded"
    assert first.held_out > 0 and first.filtered > 0
    # the second run resent only what the first did not settle (the refused rows among them)
    assert second.sent == first.sent - first.ok and second.ok == second.sent - len(invalid)


CHILD = """
import datetime as dt, os, sys
from pathlib import Path
import duckdb
from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
os.environ["C360_TEST_BRAZE_KEY"] = sys.argv[2]
sync = load_sync(Path(sys.argv[1]))
with duckdb.connect(sys.argv[3]) as con:
    run_diff_sync(con, sync, dt.date.fromisoformat(sys.argv[4]), "run-1", registry.build(sync),
                  chunk_rows=6, ack_rows=6)
"""


def test_a_braze_sync_killed_mid_run_resumes_without_applying_a_row_twice(
    pipeline, tmp_path, monkeypatch
):
    warehouse = _warehouse(pipeline, tmp_path)
    # every request answered a little late: the kill lands between a request and its answer
    faults = Faults(timeout_rate=0.0, slow_seconds=0.0)
    with BrazeServer(KEY, faults) as server:
        original = server._track

        def slow_track(body):
            time.sleep(0.15)
            return original(body)

        server._track = slow_track  # type: ignore[method-assign]
        path = tmp_path / "braze__lapsed_high_value.yml"
        path.write_text(SYNC.format(url=server.url, batch_rows=3).replace(
            "mode: mirror", "mode: upsert"))  # fmt: skip
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
        applied_before = sum(server.applied.values())
        assert applied_before >= 9, "the child died before it sent anything"
        with duckdb.connect(str(warehouse)) as con:
            running = con.execute(
                "select count(*) from activation.sync_runs where sync_id = ? "
                "and status = 'running'",
                [sync.name],
            ).fetchone()[0]
            assert running == 1, "the killed run left its sync_runs row"
            resumed = run_diff_sync(con, sync, AS_OF, "run-2", _client(sync, monkeypatch),
                                    chunk_rows=6, ack_rows=6)  # fmt: skip
            expected = _expected(con)
            statuses = dict(
                con.execute(
                    "select status, count(*) from activation.sync_runs where sync_id = ? "
                    "group by 1",
                    [sync.name],
                ).fetchall()
            )
            reconciled = con.execute(
                "select count(*) from activation.contact_history where run_id = 'run-2' "
                "and error_message = 'reconciled by read-back'"
            ).fetchone()[0]
    assert resumed.resumed_sync_run_id is not None, "the rerun finished the killed run's plan"
    assert statuses == {"interrupted": 1, "success": 1}
    assert server.subscribed(GROUP) == expected, "exactly the consented audience"
    assert max(server.applied.values()) == 1, "no row applied twice across the kill"
    assert reconciled >= 1, "rows the killed run applied were read back, not resent"
