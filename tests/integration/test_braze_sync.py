"""A Braze sync killed with SIGKILL mid-run, against a local server written from Braze's
published API (tests/servers/braze.py): the rerun reads back (/users/export/ids) what the killed
run applied instead of resending it, no row applied twice. Checked on the server's own state;
the convergence under faults is tests/integration/test_platform_sync_convergence.py."""

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
from tests.integration.platform_sync_helpers import sync_yaml
from tests.integration.test_webhook_sync import _expected
from tests.servers.braze import BrazeServer
from tests.servers.common import Faults

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]
KEY = "local-braze-key-not-real"
GROUP = "sg-lapsed"


def _sync_yaml(url: str, batch_rows: int = 6, mode: str = "mirror") -> str:
    return (
        sync_yaml("braze", url)
        .replace("batch_rows: 6", f"batch_rows: {batch_rows}")
        .replace("mode: mirror", f"mode: {mode}")
    )


def _client(sync, monkeypatch):
    """The sync's client as the registry builds it (key from the env var the YAML names), with
    short backoffs for the test."""
    monkeypatch.setenv("TEST_BRAZE_KEY", KEY)
    client = registry.build(sync)
    client.settings = dataclasses.replace(client.settings, backoff_seconds=0.02, max_attempts=6)
    return client


def _warehouse(pipeline, tmp_path: Path) -> Path:
    home, _ = pipeline
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(home.warehouse, copy)
    return copy


CHILD = """
import datetime as dt, os, sys
from pathlib import Path
import duckdb
from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
os.environ["TEST_BRAZE_KEY"] = sys.argv[2]
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
