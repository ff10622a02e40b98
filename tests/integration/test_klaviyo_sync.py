"""Klaviyo specifics against the local Klaviyo API server (tests/servers/klaviyo.py); the
convergence under faults is tests/integration/test_platform_sync_convergence.py."""

import httpx
import pytest

from tests.servers.klaviyo import KlaviyoServer

pytestmark = [pytest.mark.integration]


def test_klaviyo_requires_the_revision_header():
    """Klaviyo refuses a request without `revision` (400 naming the parameter)."""
    with KlaviyoServer() as server:
        answer = httpx.get(
            f"{server.url}/api/profiles",
            params={"filter": 'any(external_id,["x"])'},
            headers={"Authorization": "Klaviyo-API-Key pk_test"},
        )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["source"] == {"parameter": "revision"}
