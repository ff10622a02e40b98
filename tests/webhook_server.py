"""A local webhook destination that follows docs/webhook.openapi.yaml — real HTTP on a loopback
port, with stored state the tests assert on (not the client's report) and injectable faults:
429 with Retry-After, 5xx, slow responses (client timeouts), dropped connections, per-row
retryable refusals; rows whose `email` field has no @ are rejected for good."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

MAX_ROWS, MAX_BYTES = 1000, 1_000_000


@dataclass
class Faults:
    """Fault plan; rates are per request (or per row for rejections), drawn from a seeded RNG."""

    rate_limit_first: int = 0  # the first N batch requests get 429
    retry_after_seconds: int = 1
    server_error_rate: float = 0.0
    timeout_rate: float = 0.0  # apply the batch, then answer too late for the client
    reset_rate: float = 0.0  # drop the connection without answering (batch not applied)
    retryable_rate: float = 0.0  # per row: 'retryable' (temporarily refused), not applied
    slow_seconds: float = 3.0
    delay_seconds: float = 0.0  # every batch answers this late (within the client's timeout)
    seed: int = 7
    rate_limit_rate: float = 0.0  # per batch request after the first N: 429 with Retry-After
    # a batch holding any of these identifiers is lost: nothing applied, answered too late
    lost_identifiers: frozenset[str] = frozenset()


@dataclass
class State:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # identifier -> record
    applied_keys: set[str] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)  # the request log
    applications: int = 0  # row applications (a duplicate key applies nothing)
    applied: list[tuple[str, str]] = field(default_factory=list)  # (op, identifier) per application
    # (op, identifier) of every row of every batch request received, whatever the answer
    received: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class WebhookServer:
    def __init__(
        self, secret: str, faults: Faults | None = None, poll_interval: float = 0.5
    ) -> None:
        self.secret = secret.encode()
        self.faults = faults or Faults()
        self.state = State()
        self.rng = random.Random(self.faults.seed)
        self.batch_requests = 0
        self.in_flight = 0  # batch requests being answered now
        self.max_in_flight = 0  # the most batch requests ever answered at once
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _json(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                # a batch stops counting as in flight before its answer leaves: the client may
                # send its next batch the moment it reads this one, before this thread runs on
                self._leave_flight()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                # the client may have timed out and left: that is the fault being tested
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path.startswith("/v1/records/"):
                    # the identifier is one percent-encoded path segment (the contract)
                    record = server.state.records.get(unquote(path.removeprefix("/v1/records/")))
                    if record is None:
                        return self._json(404, {"error": "not found"})
                    return self._json(200, record)
                if path == "/v1/records":
                    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                    keys = sorted(server.state.records)
                    start = keys.index(params["cursor"]) if params.get("cursor") in keys else 0
                    limit = min(int(params.get("limit", 1000)), 1000)
                    page = keys[start : start + limit]
                    body: dict[str, Any] = {"records": [server.state.records[k] for k in page]}
                    if start + limit < len(keys):
                        body["next_cursor"] = keys[start + limit]
                    return self._json(200, body)
                return self._json(404, {"error": "no such path"})

            def do_POST(self) -> None:
                if self.path != "/v1/batches":
                    return self._json(404, {"error": "no such path"})
                with server.state.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                self._in_flight = True
                try:
                    return self._batch()
                finally:
                    self._leave_flight()

            def _leave_flight(self) -> None:
                if getattr(self, "_in_flight", False):
                    self._in_flight = False
                    with server.state.lock:
                        server.in_flight -= 1

            def _batch(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.state.lock:
                    server.batch_requests += 1
                    n = server.batch_requests
                    server.state.requests.append(
                        {"at": time.monotonic(), "bytes": len(raw), "n": n}
                    )
                    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                        server.state.received.extend(
                            ("delete" if r.get("op") == "delete" else "upsert", r.get("identifier"))
                            for r in json.loads(raw)["rows"]
                        )
                    draw = server.rng.random()
                    f = server.faults
                expected = "sha256=" + hmac.new(server.secret, raw, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get("X-C360-Signature", ""), expected):
                    return self._json(401, {"error": "bad signature"})
                if len(raw) > MAX_BYTES:
                    return self._json(413, {"error": f"body over {MAX_BYTES} bytes"})
                if n <= f.rate_limit_first:
                    return self._json(
                        429, {"error": "slow down"}, {"Retry-After": str(f.retry_after_seconds)}
                    )
                if draw < f.rate_limit_rate:
                    return self._json(
                        429, {"error": "slow down"}, {"Retry-After": str(f.retry_after_seconds)}
                    )
                draw -= f.rate_limit_rate
                if draw < f.reset_rate:
                    self.close_connection = True
                    self.connection.shutdown(2)  # no answer, nothing applied
                    return None
                draw -= f.reset_rate
                if draw < f.server_error_rate:
                    return self._json(503, {"error": "try later"})
                draw -= f.server_error_rate
                try:
                    rows = json.loads(raw)["rows"]
                    assert isinstance(rows, list)
                except (ValueError, KeyError, AssertionError):
                    return self._json(400, {"error": "malformed batch"})
                if len(rows) > MAX_ROWS:
                    return self._json(413, {"error": f"over {MAX_ROWS} rows"})
                if any(not isinstance(r, dict) or "idempotency_key" not in r for r in rows):
                    return self._json(400, {"error": "a row without idempotency_key"})
                # like platforms that refuse a whole batch for one bad row
                if any((r.get("fields") or {}).get("poison") for r in rows):
                    return self._json(400, {"error": "batch holds an invalid row"})
                if any(r.get("identifier") in f.lost_identifiers for r in rows):
                    time.sleep(f.slow_seconds)  # nothing applied, and the client gave up
                    return self._json(503, {"error": "lost"})
                results = []
                with server.state.lock:
                    for row in rows:
                        key = row["idempotency_key"]
                        ident = row.get("identifier")
                        if key in server.state.applied_keys:
                            results.append({"idempotency_key": key, "status": "ok"})
                            continue
                        if not ident or "@" not in str((row.get("fields") or {}).get("email", "@")):
                            results.append(
                                {
                                    "idempotency_key": key,
                                    "status": "rejected",
                                    "reason": "invalid email",
                                }
                            )
                            continue
                        if server.rng.random() < f.retryable_rate:
                            results.append(
                                {"idempotency_key": key, "status": "retryable", "reason": "busy"}
                            )
                            continue
                        if row.get("op") == "delete":
                            server.state.records.pop(ident, None)
                        else:
                            server.state.records[ident] = {
                                "identifier": ident, "fields": row.get("fields") or {},
                                "idempotency_key": key,
                            }  # fmt: skip
                        server.state.applied_keys.add(key)
                        server.state.applications += 1
                        server.state.applied.append(
                            ("delete" if row.get("op") == "delete" else "upsert", ident)
                        )
                        results.append({"idempotency_key": key, "status": "ok"})
                if draw < f.timeout_rate:
                    time.sleep(f.slow_seconds)  # applied, but the client gave up
                elif f.delay_seconds:
                    time.sleep(f.delay_seconds)
                return self._json(200, {"results": results})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
        )  # poll_interval: how long shutdown waits at most

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
