"""What the local platform servers share: a threaded loopback HTTP server, JSON answers, and a
seeded fault plan drawn per request (rate limit, 5xx, apply-then-answer-too-late)."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Faults:
    """Per write request, one draw from a seeded RNG: rate limited (429 with Retry-After, or
    the platform's own throttle answer), a 5xx, or applied and then answered after
    `slow_seconds` (the client has timed out). Their sum is the injected fault share. With
    `cycle`, the draws follow that sequence instead (None: no fault), so the injected share
    does not depend on how many requests a short run happens to make."""

    rate_limit_rate: float = 0.0
    server_error_rate: float = 0.0
    timeout_rate: float = 0.0
    retry_after_seconds: int = 1
    slow_seconds: float = 1.5
    seed: int = 7
    cycle: tuple[str | None, ...] = ()

    @property
    def share(self) -> float:
        if self.cycle:
            return sum(1 for fault in self.cycle if fault) / len(self.cycle)
        return self.rate_limit_rate + self.server_error_rate + self.timeout_rate


class Request:
    """One parsed request: method, path, query, headers, raw body and JSON body (if any)."""

    def __init__(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        self.method, self.path = method, parts.path
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.headers = handler.headers
        self.raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            self.json: Any = json.loads(self.raw) if self.raw else None
        except ValueError:
            self.json = None


class Reply:
    """An answer: status, JSON body, headers; `late`: applied, answered after this many seconds."""

    def __init__(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.late = 0.0


class PlatformServer:
    """A loopback HTTP server whose `handle(request) -> Reply` a subclass writes; faults are
    drawn with `draw()` under `lock`, which also guards the subclass's state."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.faults_injected: dict[str, int] = {"rate_limit": 0, "server_error": 0, "timeout": 0}
        self.write_requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                request = Request(self, method)
                with server.lock:
                    server.requests.append((method, request.path))
                reply = server.handle(request)
                if reply.late:
                    time.sleep(reply.late)
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    def handle(self, request: Request) -> Reply:  # pragma: no cover - subclasses answer
        raise NotImplementedError

    def draw(self) -> str | None:
        """The fault for this write request: 'rate_limit', 'server_error', 'timeout' or None."""
        with self.lock:
            self.write_requests += 1
            if self.faults.cycle:
                fault = self.faults.cycle[(self.write_requests - 1) % len(self.faults.cycle)]
                if fault:
                    self.faults_injected[fault] += 1
                return fault
            value, f = self.rng.random(), self.faults
            for name, rate in (("rate_limit", f.rate_limit_rate),
                               ("server_error", f.server_error_rate),
                               ("timeout", f.timeout_rate)):  # fmt: skip
                if value < rate:
                    self.faults_injected[name] += 1
                    return name
                value -= rate
            return None

    def applied_then_late(self, reply: Reply, fault: str | None) -> Reply:
        """The reply as is, or answered too late for the client when the fault is 'timeout'
        (the change is already applied: the fault being tested)."""
        if fault == "timeout":
            reply.late = self.faults.slow_seconds
        return reply

    def __enter__(self) -> PlatformServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def guarded(handle: Callable[[Request], Reply]) -> Callable[[Request], Reply]:
    """A handler whose unexpected exception becomes a 500 naming it (a test server bug shows)."""

    def run(request: Request) -> Reply:
        try:
            return handle(request)
        except Exception as exc:
            return Reply(500, {"error": f"test server: {type(exc).__name__}: {exc}"})

    return run
