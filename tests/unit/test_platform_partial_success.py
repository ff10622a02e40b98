"""Partial success in each platform's own shape reaches the right rows: Google's
partialFailureError (operations[i]), Meta's invalid_entry_samples and Klaviyo's import errors
reject only the rows they name, the others end ok — against the local servers (real HTTP)."""

from orchestration.activation.destinations import google_ads, hashing, klaviyo, meta
from orchestration.activation.destinations._ledger import Ledger
from orchestration.activation.destinations.rows import make_row
from tests.servers.google_ads import GoogleAdsServer
from tests.servers.klaviyo import KlaviyoServer
from tests.servers.meta import MetaServer

PEOPLE = {
    "c1": {"email": "ann@example.org", "first_name": "Ann"},
    "c2": {"email": "bad@example.org", "first_name": "Bob"},
    "c3": {"email": "cy@example.org", "first_name": "Cy"},
}


def _rows(sync):
    return [make_row(sync, i, "upsert", f) for i, f in PEOPLE.items()]


def _bad_google_hash(monkeypatch) -> None:
    """bad@example.org goes out with a hashedEmail that is not SHA-256 (Google refuses it)."""
    real = hashing.google_user_identifiers

    def with_a_bad_hash(fields, region="US"):
        if fields.get("email") == "bad@example.org":
            return [{"hashedEmail": "not-a-sha256"}]
        return real(fields, region)

    monkeypatch.setattr(hashing, "google_user_identifiers", with_a_bad_hash)


def _google(server: GoogleAdsServer, tmp_path) -> google_ads.GoogleAdsClient:
    config = google_ads.GoogleAdsConfig(
        customer_id="1234567890", user_list_id="555", endpoint=server.url,
        backoff_seconds=0, poll_seconds=0,
    )  # fmt: skip
    return google_ads.GoogleAdsClient(
        config, "s", "dev-token", "access-token", ledger=Ledger("s", tmp_path)
    )


def test_google_partial_failure_rejects_the_named_operation_only(tmp_path, monkeypatch):
    _bad_google_hash(monkeypatch)
    with GoogleAdsServer() as server:
        client = _google(server, tmp_path)
        rows = _rows("s")
        out = client.send(rows)
        client.close()
    by_id = {r.identifier: out[r.idempotency_key] for r in rows}
    assert by_id["c2"].status == "rejected"
    assert "INVALID_SHA256_FORMAT" in by_id["c2"].reason
    assert by_id["c1"].status == by_id["c3"].status == "ok"
    assert server.hashed_emails() == {hashing.sha256_hex("ann@example.org"),
                                      hashing.sha256_hex("cy@example.org")}  # fmt: skip


def test_meta_invalid_entries_reject_their_rows_only(tmp_path, monkeypatch):
    real = hashing.meta_user_row

    def with_a_bad_value(fields, region="US"):
        row = real(fields, region)
        return ["not-hashed", *row[1:]] if fields.get("email") == "bad@example.org" else row

    monkeypatch.setattr(hashing, "meta_user_row", with_a_bad_value)
    with MetaServer() as server:
        config = meta.MetaConfig(audience_id="23850000000000001", endpoint=server.url,
                                 backoff_seconds=0)  # fmt: skip
        client = meta.MetaClient(config, "s", "meta-token", ledger=Ledger("s", tmp_path))
        rows = _rows("s")
        out = client.send(rows)
        client.close()
    by_id = {r.identifier: out[r.idempotency_key] for r in rows}
    assert by_id["c2"].status == "rejected" and "SHA-256" in by_id["c2"].reason
    assert by_id["c1"].status == by_id["c3"].status == "ok"
    assert server.held("EMAIL") == {hashing.sha256_hex("ann@example.org"),
                                    hashing.sha256_hex("cy@example.org")}  # fmt: skip


def test_klaviyo_import_errors_reject_their_rows_only():
    people = {**PEOPLE, "c2": {"email": "not-an-email", "first_name": "Bob"}}
    with KlaviyoServer() as server:
        config = klaviyo.KlaviyoConfig(list_id="Y6nRLr", endpoint=server.url, backoff_seconds=0,
                                       poll_seconds=0)  # fmt: skip
        client = klaviyo.KlaviyoClient(config, "s", "pk_test")
        rows = [make_row("s", i, "upsert", f) for i, f in people.items()]
        out = client.send(rows)
        client.close()
    by_id = {r.identifier: out[r.idempotency_key] for r in rows}
    assert by_id["c2"].status == "rejected" and "Invalid email" in by_id["c2"].reason
    assert "not-an-email" not in by_id["c2"].reason, "no personal data in the reason"
    assert by_id["c1"].status == by_id["c3"].status == "ok"
    assert set(server.member_attributes()) == {"c1", "c3"}


def test_google_does_not_acknowledge_a_refused_add_on_a_later_send(tmp_path, monkeypatch):
    """A refused operation's job ran (for the others): resending the refused row must send it
    again (refused again), not acknowledge it because its job ended SUCCESS."""
    _bad_google_hash(monkeypatch)
    with GoogleAdsServer() as server:
        client = _google(server, tmp_path)
        rows = _rows("s")  # one job: c1 and c3 taken, c2 refused
        first, again = client.send(rows), client.send(rows)
        client.close()
    key = next(r.idempotency_key for r in rows if r.identifier == "c2")
    assert first[key].status == again[key].status == "rejected", again[key]
    assert {o.status for k, o in again.items() if k != key} == {"ok"}
