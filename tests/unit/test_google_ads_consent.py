"""Google Ads Customer Match carries the EEA consent fields as Google documents them (Consent:
adUserData, adPersonalization on the job's customerMatchUserListMetadata and on each UserData),
derived from the consent the planner checked; the local server keeps what each member was
added with and refuses an unknown consent status."""

import httpx

from orchestration.activation.destinations import google_ads
from orchestration.activation.destinations._ledger import Ledger
from orchestration.activation.destinations.rows import make_row
from tests.servers.google_ads import GoogleAdsServer

PEOPLE = {"c1": {"email": "ann@example.org"}, "c2": {"email": "bob@example.org"}}


def _send(server: GoogleAdsServer, tmp_path, purpose: str) -> None:
    config = google_ads.GoogleAdsConfig(
        customer_id="1234567890", user_list_id="555", endpoint=server.url,
        backoff_seconds=0, poll_seconds=0,
    )  # fmt: skip
    client = google_ads.GoogleAdsClient(config, "s", "dev-token", "access-token",
                                        ledger=Ledger("s", tmp_path), purpose=purpose)  # fmt: skip
    out = client.send([make_row("s", i, "upsert", f) for i, f in PEOPLE.items()])
    client.close()
    assert {o.status for o in out.values()} == {"ok"}


def test_a_marketing_sync_sends_both_consents_granted(tmp_path):
    with GoogleAdsServer() as server:
        _send(server, tmp_path, "marketing")
    granted = {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}
    assert len(server.members) == 2
    assert all(c == granted for c in server.consents.values()), server.consents
    assert server.creates_without_consent == 0
    assert all(j.consent == granted for j in server.jobs.values()), "on the job too"


def test_a_purpose_other_than_advertising_denies_personalization(tmp_path):
    with GoogleAdsServer() as server:
        _send(server, tmp_path, "service")
    assert {c["adPersonalization"] for c in server.consents.values()} == {"DENIED"}
    assert {c["adUserData"] for c in server.consents.values()} == {"GRANTED"}


def test_the_server_refuses_an_unknown_consent_status():
    with GoogleAdsServer() as server:
        answer = httpx.post(
            f"{server.url}/v21/customers/1234567890/offlineUserDataJobs:create",
            headers={"Authorization": "Bearer access-token", "developer-token": "dev-token"},
            json={"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {
                "userList": server.user_list, "consent": {"adUserData": "YES"}}}},
        )  # fmt: skip
    assert answer.status_code == 400
    assert "consent" in answer.json()["error"]["message"].lower()


def test_a_user_denied_ad_user_data_is_not_added():
    with GoogleAdsServer() as server:
        headers = {"Authorization": "Bearer access-token", "developer-token": "dev-token"}
        base = f"{server.url}/v21/customers/1234567890"
        job = httpx.post(f"{base}/offlineUserDataJobs:create", headers=headers, json={"job": {
            "type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {
                "userList": server.user_list, "consent": {"adUserData": "GRANTED",
                                                         "adPersonalization": "GRANTED"}}}})  # fmt: skip
        path = job.json()["resourceName"].split("/", 2)[-1]
        ids = [{"hashedEmail": "a" * 64}, {"hashedEmail": "b" * 64}]
        httpx.post(f"{base}/{path}:addOperations", headers=headers, json={"operations": [
            {"create": {"userIdentifiers": [ids[0]]}},
            {"create": {"userIdentifiers": [ids[1]], "consent": {"adUserData": "DENIED"}}}]})  # fmt: skip
        httpx.post(f"{base}/{path}:run", headers=headers, json={})
    assert server.hashed_emails() == {"a" * 64}
