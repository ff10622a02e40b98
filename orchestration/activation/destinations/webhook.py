"""The generic webhook destination (docs/webhook.openapi.yaml): signed JSON batches within the
destination's row and byte limits, each row with an idempotency key, and every row ending ok,
rejected (with the destination's reason), retryable or unknown.

Faults are handled per the contract: 429 waits Retry-After; 5xx and dropped connections are
retried with exponential backoff; a batch refused as a whole (400) is bisected down to its bad
rows; a timeout leaves its rows unknown, and unknown rows are read back from the destination and
resent only because the endpoint is idempotent (same key, applied once). Secrets come from env.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from orchestration.activation.destinations.registry import DestinationSpec, Limits, RateLimiter
from orchestration.activation.destinations.rows import (
    APPLIED_AT_FIRST_ATTEMPT,
    EncodedRows,
    Outcome,
    Row,
)
from orchestration.activation.sync_definition import DestinationConfig, EnvName
from orchestration.int_setting import int_setting
from orchestration.redaction import redact, redact_logger, redact_url, url_secrets

if TYPE_CHECKING:
    from orchestration.activation.sync_definition import SyncDefinition

# httpx logs each request's URL (INFO): credentials in C360_WEBHOOK_URL are cut there too
redact_logger("httpx")


class WebhookConfigError(ValueError):
    """The webhook destination is misconfigured (names the env var or field)."""


class WebhookAuthError(RuntimeError):
    """The destination refused the signature (401): a secret problem, not a data problem."""


@dataclass(frozen=True)
class WebhookConfig:
    url: str = field(repr=False)  # may hold user:password@ or ?token=: messages use shown_url
    secret: str = field(repr=False)
    max_rows: int = 1000
    max_bytes: int = 1_000_000
    timeout_seconds: float = 10.0
    max_attempts: int = 5  # per request, and rounds of resending retryable rows
    backoff_seconds: float = 0.5  # first backoff; doubles per attempt
    max_retry_after_seconds: float = 120.0
    # batches in flight at once while the destination answers without pushing back (429, 5xx,
    # dropped connections, timeouts put the client back to one at a time): the destination
    # works on one batch while the client signs the next and reads the last one's results.
    # C360_WEBHOOK_MAX_IN_FLIGHT when not given: a config built from parts (the destination
    # factory narrows the row and byte limits per sync) keeps what the env says
    max_in_flight: int = field(default_factory=lambda: max_in_flight_from_env())
    rate_per_second: float | None = None  # requests started per second (the sync's limit)

    def endpoint(self, path: str) -> str:
        """`path` ('/v1/batches') under the URL's own path, its query string (?token=...) kept
        after it: a URL with a query is not broken by appending the path to it."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path))

    @property
    def shown_url(self) -> str:
        """The URL fit for a message, log line or metadata: credentials cut (redaction.py)."""
        return redact_url(self.url, [self.secret])

    @classmethod
    def from_env(
        cls,
        prefix: str = "C360_WEBHOOK",
        url_env: str | None = None,
        secret_env: str | None = None,
    ) -> WebhookConfig:
        """URL and secret from env (`C360_WEBHOOK_URL`, `C360_WEBHOOK_SECRET`, or the variables a
        sync names), limits optional (`<prefix>_MAX_ROWS`, ...)."""
        url_env, secret_env = url_env or f"{prefix}_URL", secret_env or f"{prefix}_SECRET"
        url, secret = os.environ.get(url_env), os.environ.get(secret_env)
        if not url:
            raise WebhookConfigError(f"{url_env} is not set")
        if not secret:
            raise WebhookConfigError(f"{secret_env} is not set")
        return cls(
            url=url.rstrip("/"),
            secret=secret,
            max_rows=int(os.environ.get(f"{prefix}_MAX_ROWS", 1000)),
            max_bytes=int(os.environ.get(f"{prefix}_MAX_BYTES", 1_000_000)),
            timeout_seconds=float(os.environ.get(f"{prefix}_TIMEOUT_SECONDS", 10)),
            max_in_flight=max_in_flight_from_env(prefix),
        )

    def record_url(self, identifier: str) -> str:
        """GET /v1/records/{identifier} with the identifier percent-encoded as one path
        segment: `#`, `?`, `/`, `%` or a space in it would otherwise cut or change the path
        (`a#b@x.org` read back as `a`)."""
        return self.endpoint("/v1/records/" + quote(identifier, safe=""))


def max_in_flight_from_env(prefix: str = "C360_WEBHOOK") -> int:
    """`<prefix>_MAX_IN_FLIGHT` (default 2): batches in flight at once, at least 1."""
    name = f"{prefix}_MAX_IN_FLIGHT"
    return int_setting(name, os.environ.get(name, "2"), 1, WebhookConfigError)


_EMPTY_BODY_SIZE = len(b'{"rows":[]}')


def _body(rows: Sequence[Row]) -> bytes:
    return ('{"rows":[' + ",".join([r.payload_json for r in rows]) + "]}").encode()


def batches(rows: Sequence[Row], max_rows: int, max_bytes: int) -> list[list[Row]]:
    """Consecutive batches within both limits (a single row over max_bytes is its own batch and
    the destination's 413 rejects it)."""
    out: list[list[Row]] = []
    current: list[Row] = []
    size = _EMPTY_BODY_SIZE
    for row in rows:
        text = row.payload_json
        row_size = (len(text) if text.isascii() else len(text.encode())) + 1
        if current and (len(current) >= max_rows or size + row_size > max_bytes):
            out.append(current)
            current, size = [], _EMPTY_BODY_SIZE
        current.append(row)
        size += row_size
    if current:
        out.append(current)
    return out


def _batches_with_bodies(
    rows: Sequence[Row], max_rows: int, max_bytes: int
) -> Iterator[tuple[list[Row], bytes]]:
    """The batches of batches(), each with its request body. A body is encoded in one call,
    not row by row: the next max_rows rows whose body fits in max_bytes are exactly the batch
    batches() cuts (its running size is the body's length + 1); only a batch over the byte
    limit is cut row by row, as batches() does."""
    start, step = 0, max(max_rows, 1)  # batches() cuts single rows when max_rows < 1
    while start < len(rows):
        batch = list(rows[start : start + step])
        body = _body(batch)
        if len(body) + 1 > max_bytes and len(batch) > 1:
            batch = batches(batch, max_rows, max_bytes)[0]
            body = _body(batch)
        yield batch, body
        start += len(batch)


class WebhookClient:
    """Sends rows to one webhook destination for one sync; see the module docstring."""

    def __init__(
        self,
        config: WebhookConfig,
        sync: str,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.config, self.sync, self.sleep, self.log = config, sync, sleep, log
        self.http = http or httpx.Client(timeout=config.timeout_seconds)
        self._secrets = [config.secret, *url_secrets(config.url)]
        self._batches_url = config.endpoint("/v1/batches")
        self.requests = 0
        self._lock = threading.Lock()
        # one batch at a time until the destination answers a batch without pushing back, and
        # again after any push back; no request leaves before a Retry-After has passed
        self._calm = False
        self._not_before = 0.0
        self._rate = RateLimiter(config.rate_per_second, sleep)

    def _redact(self, text: object) -> str:
        """A destination's or httpx's text with credentials cut: URL userinfo, secret
        parameters, and this destination's URL credentials and signing secret anywhere."""
        if not text:
            return "" if text is None else str(text)
        return redact(text, self._secrets)

    # --- one HTTP request, with the contract's retries ------------------------------------

    def _post(self, body: bytes) -> httpx.Response | str:
        """The response, or 'timeout' / 'gave_up: <why>' when no usable answer came."""
        signature = (
            "sha256=" + hmac.new(self.config.secret.encode(), body, hashlib.sha256).hexdigest()
        )
        headers = {
            "Content-Type": "application/json",
            "X-C360-Signature": signature,
            "X-C360-Sync": self.sync,
        }
        why = ""
        for attempt in range(1, self.config.max_attempts + 1):
            with self._lock:
                self.requests += 1
                delay = self._not_before - time.monotonic()
            if delay > 0:  # another batch in flight was told to wait (Retry-After)
                self.sleep(delay)
            self._rate.wait()
            response: httpx.Response | None = None
            try:
                response = self.http.post(self._batches_url, content=body, headers=headers)
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                # a configuration problem, raised without httpx's exception (it holds the URL)
                raise WebhookConfigError(
                    f"C360_WEBHOOK_URL {self.config.shown_url}: {self._redact(exc)}"
                ) from None
            except httpx.TimeoutException:
                self._calm = False
                return "timeout"
            except httpx.TransportError as exc:  # reset, refused: nothing usable came back
                why = f"connection error ({type(exc).__name__})"
            if response is None or response.status_code >= 500:
                self._calm = False
                why = why if response is None else f"HTTP {response.status_code}"
                self.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
                continue
            if response.status_code == 429:
                self._calm = False
                wait = _retry_after(response, self.config.backoff_seconds * 2 ** (attempt - 1))
                wait = min(wait, self.config.max_retry_after_seconds)
                with self._lock:
                    self._not_before = max(self._not_before, time.monotonic() + wait)
                why = "rate limited"
                self.log(f"{self.sync}: 429, waiting {wait:.1f}s (Retry-After)")
                self.sleep(wait)
                continue
            if response.status_code == 200:
                self._calm = True
            if response.status_code == 401:
                raise WebhookAuthError(
                    f"{self.config.shown_url}: signature refused (401): check C360_WEBHOOK_SECRET"
                )
            return response
        return f"gave_up: {why} after {self.config.max_attempts} attempts"

    # --- a batch: bisect refusals, map per-row results -------------------------------------

    def _send_batch(
        self,
        rows: list[Row] | Callable[[], list[Row]],
        outcomes: dict[str, Outcome],
        body: bytes | None = None,
        keys: Sequence[str] | None = None,
        fresh: bool = False,
    ) -> None:
        """Send one batch; each row's outcome into outcomes (by key). `rows` may be a callable
        building them (with `keys` and `body` given): then Row objects are built only if the
        destination refuses the batch as a whole and it is bisected.

        `fresh`: no row of the batch has been sent before (send_encoded's first round). If the
        destination then applies every row, each gets APPLIED_AT_FIRST_ATTEMPT (no object per
        row); otherwise the answer is mapped row by row as for any batch."""
        if keys is None:
            assert not callable(rows), "keys are needed with rows built on demand"
            keys = [row.idempotency_key for row in rows]
        answer = None
        if fresh and body is not None:
            answer = self._post(body)
            if _all_applied(answer, keys):
                outcomes.update(dict.fromkeys(keys, APPLIED_AT_FIRST_ATTEMPT))
                return
        batch: list[Outcome] = []  # each row's outcome, in the order of rows
        get = outcomes.get
        for key in keys:
            outcome = get(key)
            if outcome is None:
                outcome = outcomes[key] = Outcome("unknown")
            outcome.attempts += 1
            batch.append(outcome)
        if body is None:
            rows = rows() if callable(rows) else rows
            body = _body(rows)
        if answer is None:
            answer = self._post(body)
        if answer == "timeout":
            for outcome in batch:
                outcome.status, outcome.reason = "unknown", "timeout"
            return
        if isinstance(answer, str):
            for outcome in batch:
                outcome.status, outcome.reason = "retryable", answer
            return
        if answer.status_code in (400, 413, 422):
            if len(keys) == 1:
                batch[0].status, batch[0].reason = "rejected", self._redact(_error(answer))
                return
            rows = rows() if callable(rows) else rows
            half = len(rows) // 2
            self._send_batch(rows[:half], outcomes)
            self._send_batch(rows[half:], outcomes)
            return
        if answer.status_code != 200:
            for outcome in batch:
                outcome.status, outcome.reason = "retryable", f"HTTP {answer.status_code}"
            return
        results = answer.json().get("results", [])
        if [r.get("idempotency_key") for r in results] != list(keys):  # not one per row, in order
            by_key = {r.get("idempotency_key"): r for r in results}
            results = [by_key.get(key) for key in keys]
        for outcome, result in zip(batch, results, strict=True):
            if result is None:
                outcome.status, outcome.reason = "unknown", "no result for the row"
            else:
                outcome.status = result.get("status", "unknown")
                outcome.reason = self._redact(result.get("reason", ""))

    # --- reconciliation of unknown rows ----------------------------------------------------

    def _read_back(self, row: Row) -> bool | None:
        """True if the destination holds the row as sent, False if not, None if unreadable."""
        try:
            response = self.http.get(self.config.record_url(row.identifier))
        except httpx.HTTPError:
            return None
        if response.status_code == 404:
            return row.op == "delete"
        if response.status_code != 200:
            return None
        return row.op == "upsert" and response.json().get("idempotency_key") == row.idempotency_key

    def _send_round(self, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        """Send rows in batches (see _send_batches). Only rows of distinct identifiers go out
        concurrently (the order of two rows for one identifier matters)."""
        cut = _batches_with_bodies(rows, self.config.max_rows, self.config.max_bytes)
        batches = ((batch, body, None) for batch, body in cut)
        concurrent = len({row.identifier for row in rows}) == len(rows)
        self._send_batches(batches, outcomes, concurrent)

    def _send_batches(
        self,
        batches: Iterable[tuple[list[Row] | Callable[[], list[Row]], bytes, Sequence[str] | None]],
        outcomes: dict[str, Outcome],
        concurrent: bool = True,
        fresh: bool = False,
    ) -> None:
        """Send (rows, body, keys) batches: up to max_in_flight at once while the destination is
        calm and `concurrent` (rows of distinct identifiers), one at a time otherwise; each
        row's outcome is its own entry (`fresh`: see _send_batch)."""
        limit = self.config.max_in_flight
        if limit <= 1 or not concurrent:
            for batch, body, keys in batches:
                self._send_batch(batch, outcomes, body, keys, fresh)
            return
        with ThreadPoolExecutor(limit, thread_name_prefix="c360-webhook") as pool:
            in_flight: deque[Future] = deque()
            for batch, body, keys in batches:
                while in_flight and (len(in_flight) >= limit or not self._calm):
                    in_flight.popleft().result()  # raises what the batch raised (401)
                in_flight.append(pool.submit(self._send_batch, batch, outcomes, body, keys, fresh))
            while in_flight:
                in_flight.popleft().result()

    # --- the public call --------------------------------------------------------------------

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """Every row's outcome by idempotency key. Retryable rows are resent in later rounds
        (with backoff), unknown rows read back and resent (the endpoint is idempotent)."""
        rows = list(rows)
        outcomes: dict[str, Outcome] = {}
        self._send_round(rows, outcomes)
        self._later_rounds({r.idempotency_key: r for r in rows}, outcomes)
        return outcomes

    def send_encoded(self, rows: EncodedRows) -> dict[str, Outcome]:
        """send() for rows encoded elsewhere, without a Row object per row on the common path:
        each batch's body is joined from the payload texts as they are, and Row objects are
        built only for rows a fault concerns (a batch refused as a whole and bisected, rows
        to read back or resend — the same rounds as send()). The batches are those send()
        cuts: max_rows rows, fewer where the body would pass max_bytes."""
        keys, payloads, total = rows.keys, rows.payloads, len(rows.keys)
        max_rows, max_bytes = max(self.config.max_rows, 1), self.config.max_bytes
        outcomes: dict[str, Outcome] = {}

        def encoded() -> Iterator[tuple[Callable[[], list[Row]], bytes, Sequence[str]]]:
            start = 0
            while start < total:
                stop = min(start + max_rows, total)
                body = ('{"rows":[' + ",".join(payloads[start:stop]) + "]}").encode()
                if len(body) + 1 > max_bytes and stop - start > 1:  # cut as batches() cuts
                    cut = batches(rows.rows(start, stop), max_rows, max_bytes)[0]
                    stop, body = start + len(cut), _body(cut)
                yield partial(rows.rows, start, stop), body, keys[start:stop]
                start = stop

        # the keys of one call are distinct (the runner sends a chunk's distinct identifiers
        # here), so no row of the first round has been sent before
        self._send_batches(encoded(), outcomes, fresh=len(set(keys)) == total)
        if all(outcome.status == "ok" for outcome in outcomes.values()):
            return outcomes
        # a fault: Row objects for the rows still to settle, then send()'s later rounds
        index = {key: i for i, key in enumerate(keys)}
        unsettled = [
            key for key, outcome in outcomes.items() if outcome.status in ("retryable", "unknown")
        ]
        by_key = {key: rows.rows(index[key], index[key] + 1)[0] for key in unsettled}
        self._later_rounds(by_key, outcomes)
        return outcomes

    def _later_rounds(self, by_key: dict[str, Row], outcomes: dict[str, Outcome]) -> None:
        """After the first round: unknown rows read back, retryable and unknown rows resent in
        later rounds (with backoff), up to max_attempts rounds in all. by_key holds at least
        every row that has not ended ok or rejected."""
        pending: list[Row] = []
        for round_number in range(1, self.config.max_attempts + 1):
            if round_number > 1:
                self._send_round(pending, outcomes)
            for key, outcome in outcomes.items():
                if outcome.status == "unknown":
                    held = self._read_back(by_key[key])
                    if held:
                        outcome.status, outcome.reason = "ok", "reconciled by read-back"
            pending = [
                by_key[k] for k, o in outcomes.items() if o.status in ("retryable", "unknown")
            ]
            if not pending:
                break
            self.log(f"{self.sync}: round {round_number}: {len(pending)} rows to resend")
            self.sleep(self.config.backoff_seconds * 2 ** (round_number - 1))


def _all_applied(answer: httpx.Response | str, keys: Sequence[str]) -> bool:
    """The destination answered 200 with one result per row, in the rows' order, every one ok."""
    if isinstance(answer, str) or answer.status_code != 200:
        return False
    try:
        results = answer.json().get("results")
    except ValueError:
        return False
    if not isinstance(results, list) or len(results) != len(keys):
        return False
    try:
        return all(
            result["status"] == "ok" and result["idempotency_key"] == key
            for result, key in zip(results, keys, strict=True)
        )
    except (KeyError, TypeError):
        return False


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return default


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or f"HTTP {response.status_code}")
    except ValueError:
        return f"HTTP {response.status_code}"


class WebhookSyncConfig(DestinationConfig):
    """A webhook sync's settings: the env vars holding its URL and signing secret (so two syncs
    can reach two endpoints with two secrets)."""

    url_env: EnvName = "C360_WEBHOOK_URL"
    secret_env: EnvName = "C360_WEBHOOK_SECRET"


def build_client(sync: SyncDefinition, log: Callable[[str], None]) -> WebhookClient:
    """The client of one webhook sync: URL and secret from the env vars its config names, the
    sync's row/byte limits within the env's, its max_in_flight if it sets one."""
    settings = sync.config if isinstance(sync.config, WebhookSyncConfig) else WebhookSyncConfig()
    config = WebhookConfig.from_env(url_env=settings.url_env, secret_env=settings.secret_env)
    config = WebhookConfig(
        config.url, config.secret, max_rows=min(config.max_rows, sync.batch_rows),
        max_bytes=min(config.max_bytes, sync.batch_bytes),
        timeout_seconds=config.timeout_seconds,
        max_in_flight=sync.max_in_flight or config.max_in_flight,
        rate_per_second=sync.rate_per_second,
    )  # fmt: skip
    return WebhookClient(config, sync.name, log=log)


DESTINATION = DestinationSpec(
    kind="webhook",
    description="c360's own signed JSON batch contract (docs/webhook.openapi.yaml)",
    config=WebhookSyncConfig,
    limits=Limits(batch_rows=1000, batch_bytes=1_000_000),
    build=build_client,
    errors=(WebhookConfigError, WebhookAuthError),
)
