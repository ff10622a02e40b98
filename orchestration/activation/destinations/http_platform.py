"""What the campaign-platform destinations share: one HTTP client per sync that honours the
sync's limits (rows per request, requests in flight, requests per second), handles the
platforms' faults the same way, and settles every row.

Faults: 429 waits Retry-After (bounded), 5xx and dropped connections are retried with
exponential backoff, a request refused as a whole (400, 413, 422) is bisected down to its bad
rows, a timeout leaves its rows `unknown` (the platform may have applied them). After the first
round, unknown rows are read back from the platform (`read_back`): a row the platform holds as
sent is `ok` and NOT resent — that is what keeps a row from being applied twice on platforms
without idempotency keys; the others are resent in later rounds, with backoff.

A platform module subclasses PlatformClient and writes `apply(op, rows)` (one request's rows of
one op, returning each row's (status, reason) in order) and, where the platform can say, a
`read_back(rows)`. Row grain: one person (identifier) per sync.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from orchestration.activation.destinations.registry import RateLimiter
from orchestration.activation.destinations.webhook import Outcome, Row
from orchestration.redaction import redact, redact_logger

redact_logger("httpx")

RowResult = tuple[str, str]  # (status, reason) of one row in one request


class PlatformConfigError(ValueError):
    """A platform sync cannot run: a missing env var or a bad setting (names it, never a value)."""


class PlatformAuthError(RuntimeError):
    """The platform refused the credentials (401/403): not a data problem, the sync stops."""


@dataclass(frozen=True)
class ClientSettings:
    """One sync's client limits (the sync YAML's, within the platform's)."""

    batch_rows: int
    max_in_flight: int = 2
    rate_per_second: float | None = None
    timeout_seconds: float = 10.0
    max_attempts: int = 5  # per request, and rounds of resending retryable rows
    backoff_seconds: float = 0.5
    max_retry_after_seconds: float = 120.0


class Answer:
    """A request's outcome: the response, or why none came ('timeout' or 'gave_up: ...')."""

    __slots__ = ("reason", "response")

    def __init__(self, response: httpx.Response | None, reason: str = "") -> None:
        self.response, self.reason = response, reason

    @property
    def timeout(self) -> bool:
        return self.response is None and self.reason == "timeout"

    def json(self) -> Any:
        assert self.response is not None
        try:
            return self.response.json()
        except ValueError:
            return None


class PlatformClient:
    """Base of a platform client for one sync; see the module docstring."""

    platform = "platform"
    auth_env = ""  # the env var the credentials came from, for messages

    def __init__(
        self,
        sync: str,
        base_url: str,
        headers: dict[str, str],
        settings: ClientSettings,
        secrets: Sequence[str] = (),
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.sync, self.base_url, self.settings = sync, base_url.rstrip("/"), settings
        self.sleep, self.log, self._secrets = sleep, log, [s for s in secrets if s]
        self.http = http or httpx.Client(timeout=settings.timeout_seconds, headers=headers)
        if http is not None:
            self.http.headers.update(headers)
        self.rate = RateLimiter(settings.rate_per_second, sleep)
        self.requests = 0
        self._lock = threading.Lock()
        self._not_before = 0.0
        self._calm = False  # one request at a time until the platform answers without push back

    # --- what a platform writes ---------------------------------------------------------------

    def batch_rows(self, op: str) -> int:
        """Rows per request for `op` (the platform's ceiling, within the sync's batch_rows)."""
        return self.settings.batch_rows

    def apply(self, op: str, rows: list[Row]) -> list[RowResult] | Answer:
        """Send one request for `rows` (all of `op`); each row's (status, reason) in order, or
        the Answer when the request as a whole got no usable answer (timeout, refused, gave up)."""
        raise NotImplementedError

    def read_back(self, rows: list[Row]) -> dict[str, bool | None]:
        """By idempotency key: True if the platform holds the row as sent, False if not, None if
        it cannot tell. The default cannot tell (unknown rows are then resent)."""
        return {}

    # --- HTTP with the shared fault handling ---------------------------------------------------

    def redact(self, text: object) -> str:
        return redact(text, self._secrets) if text else ""

    def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One request with retries on 429 (Retry-After), 5xx and dropped connections; a timeout
        is returned at once (the platform may have applied it: the caller decides)."""
        url = self.base_url + path
        why = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            backoff = self.settings.backoff_seconds * 2 ** (attempt - 1)
            with self._lock:
                self.requests += 1
                delay = self._not_before - time.monotonic()
            if delay > 0:
                self.sleep(delay)
            self.rate.wait()
            try:
                response = self.http.request(method, url, **kwargs)
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise PlatformConfigError(f"{self.platform} endpoint: {self.redact(exc)}") from None
            except httpx.TimeoutException:
                self._calm = False
                return Answer(None, "timeout")
            except httpx.TransportError as exc:
                self._calm = False
                why = f"connection error ({type(exc).__name__})"
                self.sleep(backoff)
                continue
            status = response.status_code
            if status == 429:
                self._calm = False
                wait = min(_retry_after(response, backoff), self.settings.max_retry_after_seconds)
                with self._lock:
                    self._not_before = max(self._not_before, time.monotonic() + wait)
                why = "rate limited"
                self.log(f"{self.sync}: {self.platform} 429, waiting {wait:.1f}s (Retry-After)")
                self.sleep(wait)
                continue
            if status >= 500:
                self._calm = False
                why = f"HTTP {status}"
                self.sleep(backoff)
                continue
            if status in (401, 403):
                raise PlatformAuthError(
                    f"{self.platform} refused the credentials (HTTP {status}): check "
                    f"{self.auth_env or 'the API key env var'}"
                )
            self._calm = True
            return Answer(response)
        return Answer(None, f"gave_up: {why} after {self.settings.max_attempts} attempts")

    # --- settling rows -------------------------------------------------------------------------

    def _apply_batch(self, op: str, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        """One request for rows; a whole-request refusal (4xx) is bisected to its bad rows."""
        for row in rows:
            outcome = outcomes.setdefault(row.idempotency_key, Outcome("unknown"))
            outcome.attempts += 1
        answer = self.apply(op, rows)
        if isinstance(answer, Answer):
            if answer.timeout:
                status, reason = "unknown", "timeout"
            elif answer.response is None:
                status, reason = "retryable", answer.reason
            elif len(rows) > 1:
                half = len(rows) // 2
                self._apply_batch(op, rows[:half], outcomes)
                self._apply_batch(op, rows[half:], outcomes)
                return
            else:
                status, reason = "rejected", self.redact(_error_text(answer))
            for row in rows:
                outcome = outcomes[row.idempotency_key]
                outcome.status, outcome.reason = status, reason
            return
        for row, (status, reason) in zip(rows, answer, strict=True):
            outcome = outcomes[row.idempotency_key]
            outcome.status, outcome.reason = status, self.redact(reason)

    def _round(self, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        """Every row sent once: by op, in requests of batch_rows(op), up to max_in_flight at
        once while the platform is calm."""
        batches: list[tuple[str, list[Row]]] = []
        for op in ("upsert", "delete"):
            of_op = [row for row in rows if row.op == op]
            size = max(1, min(self.batch_rows(op), self.settings.batch_rows))
            batches += [(op, of_op[i : i + size]) for i in range(0, len(of_op), size)]
        limit = self.settings.max_in_flight
        if limit <= 1 or len(batches) <= 1:
            for op, batch in batches:
                self._apply_batch(op, batch, outcomes)
            return
        with ThreadPoolExecutor(limit, thread_name_prefix=f"c360-{self.platform}") as pool:
            in_flight: deque[Future] = deque()
            for op, batch in batches:
                while in_flight and (len(in_flight) >= limit or not self._calm):
                    in_flight.popleft().result()
                in_flight.append(pool.submit(self._apply_batch, op, batch, outcomes))
            while in_flight:
                in_flight.popleft().result()

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """Every row's outcome by idempotency key (see the module docstring). Rows sharing an
        identifier go in separate rounds, in order (the later one is the one that counts)."""
        rows = list(rows)
        outcomes: dict[str, Outcome] = {}
        for wave in _distinct_waves(rows):
            self._settle(wave, outcomes)
        return outcomes

    def send_resumed(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """send() for rows an interrupted run may have applied: read back first; rows the
        platform holds as sent are ok without a request, the others are sent."""
        rows = list(rows)
        held = self.read_back(rows)
        outcomes = {
            row.idempotency_key: Outcome("ok", "reconciled by read-back", 0)
            for row in rows
            if held.get(row.idempotency_key)
        }
        outcomes.update(self.send([r for r in rows if r.idempotency_key not in outcomes]))
        return outcomes

    def _settle(self, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        by_key = {row.idempotency_key: row for row in rows}
        pending = rows
        for round_number in range(1, self.settings.max_attempts + 1):
            self._round(pending, outcomes)
            unknown = [by_key[k] for k in by_key if outcomes[k].status == "unknown"]
            if unknown:
                held = self.read_back(unknown)
                for row in unknown:
                    if held.get(row.idempotency_key):
                        outcome = outcomes[row.idempotency_key]
                        outcome.status, outcome.reason = "ok", "reconciled by read-back"
            pending = [by_key[k] for k in by_key if outcomes[k].status in ("retryable", "unknown")]
            if not pending or round_number == self.settings.max_attempts:
                return
            self.log(f"{self.sync}: round {round_number}: {len(pending)} rows to resend")
            self.sleep(self.settings.backoff_seconds * 2 ** (round_number - 1))

    def close(self) -> None:
        self.http.close()


def _distinct_waves(rows: list[Row]) -> list[list[Row]]:
    """Rows in waves of distinct identifiers, keeping each identifier's order."""
    waves: list[list[Row]] = []
    seen: dict[str, int] = {}
    for row in rows:
        wave = seen.get(row.identifier, -1) + 1
        seen[row.identifier] = wave
        if wave == len(waves):
            waves.append([])
        waves[wave].append(row)
    return waves


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return default


def _error_text(answer: Answer) -> str:
    body = answer.json()
    status = answer.response.status_code if answer.response is not None else 0
    if isinstance(body, dict):
        for key in ("detail", "message", "error", "title"):
            if body.get(key):
                return f"HTTP {status}: {body[key]}"
    return f"HTTP {status}"


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive slices of at most `size` items."""
    return [items[i : i + size] for i in range(0, len(items), size)]
