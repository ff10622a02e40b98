"""The webhook destination against a local server that follows docs/webhook.openapi.yaml, with
faults injected; every assertion on delivery reads the server's own stored state."""

import hashlib
import hmac
import json

import httpx
import pytest

from orchestration.activation.destinations.rows import EncodedRows, make_row
from orchestration.activation.destinations.webhook import (
    WebhookAuthError,
    WebhookClient,
    WebhookConfig,
    WebhookConfigError,
    batches,
)
from tests.webhook_server import Faults, WebhookServer

SECRET = "test-secret-not-a-real-one"


def _rows(n: int, bad_every: int = 0, poison_every: int = 0):
    rows = []
    for i in range(n):
        fields = {"email": f"person{i}@example.org", "first_name": f"P{i}"}
        if bad_every and i % bad_every == 0:
            fields["email"] = f"person{i}-no-at-sign"
        if poison_every and i % poison_every == 1:
            fields["poison"] = True
        rows.append(make_row("sync_a", f"c_{i:06d}", "upsert", fields))
    return rows


def _encoded(rows) -> EncodedRows:
    """The rows as the diff runner hands them to send_encoded (keys and payload texts)."""
    return EncodedRows(
        keys=[r.idempotency_key for r in rows],
        payloads=[r.payload_json for r in rows],
        identifiers=lambda: [r.identifier for r in rows],
        ops=lambda: [r.op for r in rows],
    )


def test_batches_respect_row_and_byte_limits():
    rows = _rows(2500)
    by_rows = batches(rows, 1000, 1_000_000)
    assert [len(b) for b in by_rows] == [1000, 1000, 500]
    by_bytes = batches(rows, 1000, 20_000)
    assert all(
        len(httpx.Request("POST", "http://x", json={"rows": [r.payload() for r in b]}).content)
        <= 20_000
        for b in by_bytes
    )
    assert sum(len(b) for b in by_bytes) == 2500 and len(by_bytes) > 3


@pytest.mark.parametrize("encoded", [False, True], ids=["send", "send_encoded"])
def test_faults_end_with_exactly_the_intended_audience_at_the_destination(encoded):
    faults = Faults(
        rate_limit_first=2, retry_after_seconds=1, server_error_rate=0.1, timeout_rate=0.1,
        reset_rate=0.05, retryable_rate=0.25, slow_seconds=1.0, seed=3,
    )  # fmt: skip
    rows = _rows(2400, bad_every=50, poison_every=400)
    with WebhookServer(SECRET, faults) as server:
        config = WebhookConfig(
            server.url,
            SECRET,
            max_rows=300,
            timeout_seconds=0.5,
            backoff_seconds=0.05,
            max_attempts=6,
        )
        client = WebhookClient(config, "sync_a")
        first = client.send_encoded(_encoded(rows)) if encoded else client.send(rows)
        # at most two runs: the second resends only what did not end ok or rejected
        again = [r for r in rows if first[r.idempotency_key].status not in ("ok", "rejected")]
        second = client.send(again) if again else {}
        outcome = {**first, **second}
        stored = server.state.records
        intended = {
            r.identifier: r for r in rows if "@" in r.fields["email"] and not r.fields.get("poison")
        }
        assert set(stored) == set(intended), "nothing missing, nothing extra"
        assert all(stored[k]["idempotency_key"] == intended[k].idempotency_key for k in stored)
        assert server.state.applications == len(intended), "each row applied once: no duplicates"
        # rows the destination refuses for good end rejected, with its reason
        refused = [r for r in rows if r.identifier not in intended]
        assert refused and all(outcome[r.idempotency_key].status == "rejected" for r in refused)
        poison = [r for r in refused if r.fields.get("poison")]
        assert {outcome[r.idempotency_key].reason for r in poison} == {"batch holds an invalid row"}
        assert all(outcome[r.idempotency_key].status == "ok" for r in intended.values())
        # Retry-After honoured: the request after each 429 came at least 1 s later
        log = server.state.requests
        assert log[2]["at"] - log[1]["at"] >= 1.0 and log[1]["at"] - log[0]["at"] >= 1.0
        # faults really happened: timeouts (reconciled by read-back) and retryable rows
        reasons = {o.reason for o in outcome.values()}
        assert "reconciled by read-back" in reasons or any(o.attempts > 1 for o in outcome.values())


def test_a_bad_signature_stops_the_sync_and_the_secret_comes_from_env(monkeypatch):
    with WebhookServer(SECRET) as server:
        client = WebhookClient(WebhookConfig(server.url, "wrong-secret"), "sync_a")
        with pytest.raises(WebhookAuthError, match="C360_WEBHOOK_SECRET"):
            client.send(_rows(3))
        assert server.state.records == {}
    monkeypatch.delenv("C360_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("C360_WEBHOOK_URL", "http://127.0.0.1:9")
    with pytest.raises(WebhookConfigError, match="C360_WEBHOOK_SECRET is not set"):
        WebhookConfig.from_env()
    monkeypatch.setenv("C360_WEBHOOK_SECRET", SECRET)
    assert WebhookConfig.from_env().secret == SECRET
    assert SECRET not in repr(WebhookConfig.from_env())


def test_signature_is_hmac_sha256_of_the_body():
    row = make_row("s", "c1", "upsert", {"email": "a@b.c"})
    assert row == make_row("s", "c1", "upsert", {"email": "a@b.c"}), "same row, same key"
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["sig"] = request.headers["X-C360-Signature"]
        seen["body"] = request.content
        return httpx.Response(
            200, json={"results": [{"idempotency_key": row.idempotency_key, "status": "ok"}]}
        )

    client = WebhookClient(
        WebhookConfig("http://dest", SECRET),
        "s",
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    assert client.send([row])[row.idempotency_key].status == "ok"
    expected = "sha256=" + hmac.new(SECRET.encode(), seen["body"], hashlib.sha256).hexdigest()
    assert seen["sig"] == expected


def test_the_key_and_payload_built_in_sql_are_make_rows():
    """The diff runner builds keys and payload texts in DuckDB from the plan's stored fields
    text: the same key as make_row for the same text (the documented key text), the same
    payload; a different generation or op gives a different key."""
    import json

    import duckdb

    from orchestration.activation.destinations.rows import (
        fields_text,
        idempotency_key_sql,
        key_text,
        payload_sql,
    )

    con = duckdb.connect()
    sync = "s|ync é"  # separators and non-ASCII in a name change nothing
    cases = [
        ("c1", "upsert", {"email": "a@b.c", "first_name": "Chloé", "n": 1.5}, 3),
        ('x|1:é"\x1f', "delete", {}, 0),
    ]
    for identifier, op, fields, generation in cases:
        row = make_row(sync, identifier, op, fields, generation)
        text = fields_text(fields)
        assert (
            row.idempotency_key
            == hashlib.sha256(key_text(sync, identifier, op, generation, text).encode()).hexdigest()
        )
        key_sql = idempotency_key_sql(sync, "$1::varchar", "$2::varchar", "$3", "$4::varchar")
        payload = payload_sql("$5::varchar", "$2::varchar", "$1::varchar", "$4::varchar")
        key, text_sql = con.execute(
            f"select {key_sql}, {payload}", [identifier, op, generation, text, row.idempotency_key]
        ).fetchone()
        assert key == row.idempotency_key
        assert json.loads(text_sql) == json.loads(row.payload_json) == row.payload()
    keys = {
        make_row(sync, "c1", op, {}, g).idempotency_key
        for op in ("upsert", "delete")
        for g in (0, 1)
    }
    assert len(keys) == 4


def test_send_encoded_cuts_the_same_batches_and_bodies_as_send():
    """send_encoded joins bodies from the payload texts: the same requests as send(), within
    the row and byte limits (a batch over max_bytes cut row by row)."""
    rows = _rows(2500)
    bodies: dict[str, list[bytes]] = {"send": [], "send_encoded": []}

    def transport(calls: list[bytes]) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            calls.append(request.content)
            keys = [r["idempotency_key"] for r in json.loads(request.content)["rows"]]
            return httpx.Response(
                200, json={"results": [{"idempotency_key": k, "status": "ok"} for k in keys]}
            )

        return httpx.MockTransport(handler)

    for how, calls in bodies.items():
        config = WebhookConfig("http://dest", SECRET, max_rows=1000, max_bytes=20_000)
        client = WebhookClient(config, "s", http=httpx.Client(transport=transport(calls)))
        out = client.send_encoded(_encoded(rows)) if how == "send_encoded" else client.send(rows)
        assert len(out) == 2500 and {o.status for o in out.values()} == {"ok"}
    assert sorted(bodies["send_encoded"]) == sorted(bodies["send"])
    assert all(len(body) <= 20_000 for body in bodies["send"]) and len(bodies["send"]) > 3


def test_a_batch_applied_in_full_shares_one_settled_outcome_and_any_other_is_mapped_per_row():
    """send_encoded's first round: a batch the destination applies in full (one ok result per
    row, in order) gives each row APPLIED_AT_FIRST_ATTEMPT, one object that cannot be changed;
    a batch with a rejected row, or with its results in another order, is mapped row by row."""
    from orchestration.activation.destinations.rows import APPLIED_AT_FIRST_ATTEMPT

    rows = _rows(900)
    batch_index: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys = [r["idempotency_key"] for r in json.loads(request.content)["rows"]]
        batch_index.append(len(batch_index))
        results = [{"idempotency_key": k, "status": "ok"} for k in keys]
        if keys[0] == rows[300].idempotency_key:  # the second batch: its first row refused
            results[0] = {"idempotency_key": keys[0], "status": "rejected", "reason": "no"}
        if keys[0] == rows[600].idempotency_key:  # the third: every row ok, in reverse order
            results.reverse()
        return httpx.Response(200, json={"results": results})

    config = WebhookConfig("http://dest", SECRET, max_rows=300, max_in_flight=1)
    client = WebhookClient(config, "s", http=httpx.Client(transport=httpx.MockTransport(handler)))
    out = client.send_encoded(_encoded(rows))
    assert len(batch_index) == 3, "no batch sent twice"
    first, second, third = (
        [out[r.idempotency_key] for r in rows[i : i + 300]] for i in (0, 300, 600)
    )
    assert all(o is APPLIED_AT_FIRST_ATTEMPT for o in first)
    assert (second[0].status, second[0].reason, second[0].attempts) == ("rejected", "no", 1)
    assert all(o.status == "ok" and o.attempts == 1 for o in second[1:] + third)
    assert not any(o is APPLIED_AT_FIRST_ATTEMPT for o in second + third)
    with pytest.raises(AttributeError):
        first[0].attempts += 1
