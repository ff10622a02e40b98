"""A Klaviyo list sync end to end on a pipeline's warehouse, against a local Klaviyo API server
(tests/servers/klaviyo.py, `revision` header required) injecting ≥ 20 % faults (429 with
Retry-After, 503, jobs applied whose answer was lost): after at most two runs the list holds
exactly the consented audience with the fields sent, no profile was imported twice, and nobody
unconsented was ever imported — checked on the server's own state."""

import duckdb
import pytest

from orchestration.activation.destinations import registry
from orchestration.activation.destinations.klaviyo import profile_attributes
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
from tests.servers.klaviyo import KlaviyoServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

SYNC = f"""name: klaviyo__lapsed_high_value
description: Lapsed high-value customers as a Klaviyo list (test).
segment: lapsed_high_value
destination: klaviyo
channel: email
purpose: marketing
mode: mirror
identifier: customer_id
batch_rows: 5
config:
  list_id: Y6nRLr
  endpoint: {{url}}
  api_key_env: TEST_KLAVIYO_API_KEY
  timeout_seconds: 0.5
  backoff_seconds: 0.01
  poll_seconds: 0.01
  max_attempts: 6
{FIELDS}"""


def test_klaviyo_sync_converges_to_the_consented_audience_under_faults(
    pipeline, tmp_path, monkeypatch
):
    home, _ = pipeline
    monkeypatch.setenv("TEST_KLAVIYO_API_KEY", "pk_test")
    faults = Faults(rate_limit_rate=0.08, server_error_rate=0.07, timeout_rate=0.07,
                    retry_after_seconds=1, slow_seconds=1.0, seed=4)  # fmt: skip
    assert faults.share >= 0.2
    warehouse = warehouse_copy(home.warehouse, tmp_path)
    with KlaviyoServer(faults=faults, max_profiles_per_job=5) as server:
        path = tmp_path / "klaviyo__lapsed_high_value.yml"
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
    held = server.member_attributes()
    assert set(held) == set(expected), "exactly the consented audience after two runs"
    for customer_id, fields in expected.items():
        want = profile_attributes(customer_id, fields)
        assert {k: held[customer_id].get(k) for k in want} == want, "the fields as sent"
    imports = [i for kind, i in server.applied if kind == "import"]
    assert len(imports) == len(set(imports)) and server.duplicate_imports == 0, (
        "no profile imported twice"
    )
    assert not set(forbidden) & set(imports), "nobody unconsented or held out was ever imported"
    assert server.requests_over_limit == 0, "every request within Klaviyo's limits"
    assert first.ok + second.ok == len(expected)


def test_klaviyo_requires_the_revision_header(tmp_path):
    """Klaviyo refuses a request without `revision` (400 naming the parameter)."""
    import httpx

    with KlaviyoServer() as server:
        answer = httpx.get(
            f"{server.url}/api/profiles",
            params={"filter": 'any(external_id,["x"])'},
            headers={"Authorization": "Klaviyo-API-Key pk_test"},
        )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["source"] == {"parameter": "revision"}
