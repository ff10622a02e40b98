"""A Google Ads Customer Match sync end to end on a pipeline's warehouse, against a local Google
Ads API server (tests/servers/google_ads.py) injecting ≥ 20 % faults: after at most two runs
the user list holds exactly the consented audience's hashed identities, no create was applied
twice, and nobody unconsented was ever applied — checked on the server's own state."""

import duckdb
import pytest

from orchestration.activation.destinations import hashing
from orchestration.activation.destinations.google_ads import GoogleAdsClient
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
from tests.servers.google_ads import GoogleAdsServer, member_key

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

SYNC = f"""name: google_ads__lapsed_high_value
description: Lapsed high-value customers as a Customer Match list (test).
segment: lapsed_high_value
destination: google_ads
channel: email
purpose: marketing
mode: mirror
identifier: customer_id
batch_rows: 10000
config:
  customer_id: "1234567890"
  user_list_id: "555"
  endpoint: {{url}}
  developer_token_env: TEST_GOOGLE_ADS_DEVELOPER_TOKEN
  access_token_env: TEST_GOOGLE_ADS_ACCESS_TOKEN
  max_identifiers_per_request: 10
  timeout_seconds: 0.5
  backoff_seconds: 0.01
  poll_seconds: 0.01
  max_attempts: 6
{FIELDS}"""


def _member(fields: dict) -> tuple[str, ...]:
    """The server's key for a person: their UserData identifiers as hashing.py builds them."""
    return member_key({"userIdentifiers": hashing.google_user_identifiers(fields)})


def test_google_ads_sync_converges_to_the_consented_audience_under_faults(
    pipeline, tmp_path, monkeypatch
):
    home, _ = pipeline
    monkeypatch.setenv("C360_LEDGER_DIR", str(tmp_path / "ledgers"))
    monkeypatch.setenv("TEST_GOOGLE_ADS_DEVELOPER_TOKEN", "dev-token")
    monkeypatch.setenv("TEST_GOOGLE_ADS_ACCESS_TOKEN", "access-token")
    faults = Faults(rate_limit_rate=0.08, server_error_rate=0.07, timeout_rate=0.07,
                    retry_after_seconds=1, slow_seconds=1.0, seed=4)  # fmt: skip
    assert faults.share >= 0.2
    warehouse = warehouse_copy(home.warehouse, tmp_path)
    with GoogleAdsServer(faults=faults, max_identifiers_per_request=10) as server:
        path = tmp_path / "google_ads__lapsed_high_value.yml"
        path.write_text(SYNC.format(url=server.url))
        sync = load_sync(path)
        with duckdb.connect(str(warehouse)) as con:
            expected = expected_audience(con)
            forbidden = not_consented(con)
            assert len(expected) > 20 and forbidden
            client = _client(sync)
            first = run_diff_sync(con, sync, AS_OF, "run-1", client)
            second = run_diff_sync(con, sync, AS_OF, "run-2", client)
            client.close()
    assert sum(server.faults_injected.values()) >= 0.15 * server.write_requests > 0
    assert all(server.faults_injected.values()), f"every fault kind met: {server.faults_injected}"
    want = {_member(f) for f in expected.values()}
    assert set(server.members) == want, "exactly the consented audience after two runs"
    creates = [key for kind, key in server.applied if kind == "create"]
    assert len(creates) == len(set(creates)) and server.duplicate_creates == 0, (
        "no row applied twice"
    )
    banned = {_member(f) for f in forbidden.values()} - want
    assert not banned & set(creates), "nobody unconsented or held out was ever applied"
    assert server.requests_over_limit == 0, "every request within the identifier limit"
    assert first.ok + second.ok == len(expected)


def _client(sync) -> GoogleAdsClient:
    from orchestration.activation.destinations import registry

    return registry.build(sync)
