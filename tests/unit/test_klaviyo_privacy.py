"""Klaviyo erasure through its Data Privacy API, against the local server written from Klaviyo's
documentation (tests/servers/klaviyo.py): `delete` erases the held profile with
POST /api/data-privacy-deletion-jobs (202), a person Klaviyo does not hold is ok, a refused
request is rejected with Klaviyo's detail, and the server refuses a body naming two identifiers
as Klaviyo documents."""

import httpx

from orchestration.activation.destinations import klaviyo, registry
from orchestration.activation.destinations.rows import make_row
from tests.servers.klaviyo import KlaviyoServer

PEOPLE = {"c1": {"email": "ann@example.org"}, "c2": {"email": "bob@example.org"}}


def _client(server: KlaviyoServer) -> klaviyo.KlaviyoClient:
    config = klaviyo.KlaviyoConfig(list_id="Y6nRLr", endpoint=server.url, backoff_seconds=0,
                                   poll_seconds=0)  # fmt: skip
    return klaviyo.KlaviyoClient(config, "s", "pk_test")


def test_klaviyo_delete_erases_the_profile_through_the_data_privacy_api():
    assert registry.get("klaviyo").deletes
    with KlaviyoServer() as server:
        client = _client(server)
        client.send([make_row("s", i, "upsert", f) for i, f in PEOPLE.items()])
        out = client.delete(["c1", "nobody"])
        client.close()
        held = {a.get("external_id") for a in server.profiles.values()}
    assert out["c1"].status == "ok" and out["nobody"].status == "ok"
    assert held == {"c2"} and set(server.member_attributes()) == {"c2"}
    assert ("privacy_delete", "c1") in server.applied


def test_the_local_klaviyo_refuses_a_deletion_naming_two_identifiers():
    with KlaviyoServer() as server:
        body = {
            "data": {
                "type": "data-privacy-deletion-job",
                "attributes": {
                    "profile": {
                        "data": {
                            "type": "profile",
                            "id": "01ABC",
                            "attributes": {"email": "ann@example.org"},
                        }
                    }
                },
            }
        }
        answer = httpx.post(server.url + "/api/data-privacy-deletion-jobs", json=body,
                            headers={"Authorization": "Klaviyo-API-Key pk_test",
                                     "revision": "2025-01-15"})  # fmt: skip
    assert answer.status_code == 400
    assert "Exactly one" in answer.json()["errors"][0]["detail"]


def test_klaviyo_reports_profiles_suppressed_at_the_platform_since_the_cursor():
    assert registry.get("klaviyo").reports_unsubscribes
    people = {f"c{i}": {"email": f"p{i}@example.org"} for i in range(130)}
    with KlaviyoServer() as server:
        client = _client(server)
        client.send([make_row("s", i, "upsert", f) for i, f in people.items()])
        assert list(client.unsubscribes()) == []
        for i in range(0, 130, 1):  # more than one page of 100
            if i % 2 == 0:
                server.suppress(f"c{i}", "SPAM_COMPLAINT" if i == 4 else "UNSUBSCRIBE")
        first = list(client.unsubscribes())
        cursor = max(u.occurred_at for u in first)
        server.suppress("c1", "HARD_BOUNCE")
        later = list(client.unsubscribes(cursor))
        client.close()
    assert {u.identifier for u in first} == {f"c{i}" for i in range(0, 130, 2)}
    assert len(first) == 65 and all(u.channel == "email" for u in first)
    assert {u.identifier: u.reason for u in first}["c4"] == "complaint"
    assert [(u.identifier, u.reason) for u in later] == [("c1", "bounce")]
