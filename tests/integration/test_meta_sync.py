"""A Meta Custom Audiences sync end to end on a pipeline's warehouse, against a local Marketing
API server (tests/servers/meta.py) injecting ≥ 20 % faults (throttling in Meta's shape, 5xx,
answers lost after the batch was applied): after at most two runs the audience holds exactly
the consented audience's hashed rows, no row was added twice, and nobody unconsented was ever
added — checked on the server's own state."""

import duckdb
import pytest

from orchestration.activation.destinations import hashing, registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from tests.integration.conftest import AS_OF
from tests.integration.platform_sync_helpers import (
    FIELDS,
    expected_audience,
    not_consented,
    warehouse_copy,
)
from tests.servers.common import Faults
from tests.servers.meta import MetaServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

SYNC = f"""name: meta__lapsed_high_value
description: Lapsed high-value customers as a Meta Custom Audience (test).
segment: lapsed_high_value
destination: meta
channel: email
purpose: marketing
mode: mirror
identifier: customer_id
batch_rows: 25
config:
  audience_id: "23850000000000001"
  endpoint: {{url}}
  access_token_env: TEST_META_ACCESS_TOKEN
  timeout_seconds: 0.5
  backoff_seconds: 0.01
  max_attempts: 6
{FIELDS}"""


def test_meta_sync_converges_to_the_consented_audience_under_faults(
    pipeline, tmp_path, monkeypatch
):
    home, _ = pipeline
    monkeypatch.setenv("C360_LEDGER_DIR", str(tmp_path / "ledgers"))
    monkeypatch.setenv("TEST_META_ACCESS_TOKEN", "meta-token")
    faults = Faults(rate_limit_rate=0.08, server_error_rate=0.07, timeout_rate=0.07,
                    slow_seconds=1.0, seed=4)  # fmt: skip
    assert faults.share >= 0.2
    warehouse = warehouse_copy(home.warehouse, tmp_path)
    with MetaServer(faults=faults, max_rows=25) as server:
        path = tmp_path / "meta__lapsed_high_value.yml"
        path.write_text(SYNC.format(url=server.url))
        sync = load_sync(path)
        with duckdb.connect(str(warehouse)) as con:
            expected = expected_audience(con)
            forbidden = not_consented(con)
            assert len(expected) > 20 and forbidden
            client = registry.build(sync)
            first = run_diff_sync(con, sync, AS_OF, "run-1", client)
            second = run_diff_sync(con, sync, AS_OF, "run-2", client)
            client.close()
    assert sum(server.faults_injected.values()) >= 0.15 * server.write_requests > 0
    assert all(server.faults_injected.values()), f"every fault kind met: {server.faults_injected}"
    want = {tuple(hashing.meta_user_row(f)) for f in expected.values()}
    assert set(server.members) == want, "exactly the consented audience after two runs"
    adds = [key for kind, key in server.applied if kind == "add"]
    assert len(adds) == len(set(adds)) and server.duplicate_adds == 0, "no row added twice"
    banned = {tuple(hashing.meta_user_row(f)) for f in forbidden.values()} - want
    assert not banned & set(adds), "nobody unconsented or held out was ever added"
    assert server.requests_over_limit == 0, "every request within the row limit"
    assert first.ok + second.ok == len(expected)
