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
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Status = Literal["ok", "rejected", "retryable", "unknown"]


class WebhookConfigError(ValueError):
    """The webhook destination is misconfigured (names the env var or field)."""


class WebhookAuthError(RuntimeError):
    """The destination refused the signature (401): a secret problem, not a data problem."""


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str = field(repr=False)
    max_rows: int = 1000
    max_bytes: int = 1_000_000
    timeout_seconds: float = 10.0
    max_attempts: int = 5  # per request, and rounds of resending retryable rows
    backoff_seconds: float = 0.5  # first backoff; doubles per attempt
    max_retry_after_seconds: float = 120.0

    @classmethod
    def from_env(cls, prefix: str = "C360_WEBHOOK") -> WebhookConfig:
        """URL and secret from env (`C360_WEBHOOK_URL`, `C360_WEBHOOK_SECRET`), limits optional."""
        url, secret = os.environ.get(f"{prefix}_URL"), os.environ.get(f"{prefix}_SECRET")
        if not url:
            raise WebhookConfigError(f"{prefix}_URL is not set")
        if not secret:
            raise WebhookConfigError(f"{prefix}_SECRET is not set")
        return cls(
            url=url.rstrip("/"),
            secret=secret,
            max_rows=int(os.environ.get(f"{prefix}_MAX_ROWS", 1000)),
            max_bytes=int(os.environ.get(f"{prefix}_MAX_BYTES", 1_000_000)),
            timeout_seconds=float(os.environ.get(f"{prefix}_TIMEOUT_SECONDS", 10)),
        )


@dataclass(frozen=True)
class Row:
    """One row to apply at the destination (grain: one person per sync)."""

    identifier: str
    op: Literal["upsert", "delete"]
    fields: dict[str, Any]
    idempotency_key: str

    def payload(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "op": self.op,
            "identifier": self.identifier,
            "fields": self.fields,
        }


def make_row(sync: str, identifier: str, op: Literal["upsert", "delete"], fields: dict) -> Row:
    """A row whose idempotency key is the hash of what it says: resending it is a no-op."""
    digest = hashlib.sha256(
        json.dumps([sync, identifier, op, fields], sort_keys=True, default=str).encode()
    ).hexdigest()
    return Row(identifier, op, fields, digest)


@dataclass
class Outcome:
    """How one row ended (grain: one row of one send)."""

    status: Status
    reason: str = ""
    attempts: int = 0


def _body(rows: Sequence[Row]) -> bytes:
    return json.dumps({"rows": [r.payload() for r in rows]}, separators=(",", ":")).encode()


def batches(rows: Sequence[Row], max_rows: int, max_bytes: int) -> list[list[Row]]:
    """Consecutive batches within both limits (a single row over max_bytes is its own batch and
    the destination's 413 rejects it)."""
    out: list[list[Row]] = []
    current: list[Row] = []
    size = len(b'{"rows":[]}')
    for row in rows:
        row_size = len(json.dumps(row.payload(), separators=(",", ":")).encode()) + 1
        if current and (len(current) >= max_rows or size + row_size > max_bytes):
            out.append(current)
            current, size = [], len(b'{"rows":[]}')
        current.append(row)
        size += row_size
    if current:
        out.append(current)
    return out


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
        self.requests = 0

    # --- one HTTP request, with the contract's retries ------------------------------------

    def _post(self, rows: Sequence[Row]) -> httpx.Response | str:
        """The response, or 'timeout' / 'gave_up: <why>' when no usable answer came."""
        body = _body(rows)
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
            self.requests += 1
            try:
                response = self.http.post(
                    f"{self.config.url}/v1/batches", content=body, headers=headers
                )
            except httpx.TimeoutException:
                return "timeout"
            except httpx.TransportError as exc:  # reset, refused: nothing usable came back
                why = f"connection error ({type(exc).__name__})"
                self.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
                continue
            if response.status_code == 429:
                wait = _retry_after(response, self.config.backoff_seconds * 2 ** (attempt - 1))
                why = "rate limited"
                self.log(f"{self.sync}: 429, waiting {wait:.1f}s (Retry-After)")
                self.sleep(min(wait, self.config.max_retry_after_seconds))
                continue
            if response.status_code >= 500:
                why = f"HTTP {response.status_code}"
                self.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
                continue
            if response.status_code == 401:
                raise WebhookAuthError(
                    f"{self.config.url}: signature refused (401): check C360_WEBHOOK_SECRET"
                )
            return response
        return f"gave_up: {why} after {self.config.max_attempts} attempts"

    # --- a batch: bisect refusals, map per-row results -------------------------------------

    def _send_batch(self, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        for row in rows:
            outcomes.setdefault(row.idempotency_key, Outcome("unknown")).attempts += 1
        answer = self._post(rows)
        if answer == "timeout":
            for row in rows:
                outcomes[row.idempotency_key].status = "unknown"
                outcomes[row.idempotency_key].reason = "timeout"
            return
        if isinstance(answer, str):
            for row in rows:
                outcomes[row.idempotency_key].status = "retryable"
                outcomes[row.idempotency_key].reason = answer
            return
        if answer.status_code in (400, 413, 422):
            if len(rows) == 1:
                outcome = outcomes[rows[0].idempotency_key]
                outcome.status, outcome.reason = "rejected", _error(answer)
                return
            half = len(rows) // 2
            self._send_batch(rows[:half], outcomes)
            self._send_batch(rows[half:], outcomes)
            return
        if answer.status_code != 200:
            for row in rows:
                outcomes[row.idempotency_key].status = "retryable"
                outcomes[row.idempotency_key].reason = f"HTTP {answer.status_code}"
            return
        results = {r.get("idempotency_key"): r for r in answer.json().get("results", [])}
        for row in rows:
            result = results.get(row.idempotency_key)
            outcome = outcomes[row.idempotency_key]
            if result is None:
                outcome.status, outcome.reason = "unknown", "no result for the row"
            else:
                outcome.status = result.get("status", "unknown")
                outcome.reason = result.get("reason", "")

    # --- reconciliation of unknown rows ----------------------------------------------------

    def _read_back(self, row: Row) -> bool | None:
        """True if the destination holds the row as sent, False if not, None if unreadable."""
        try:
            response = self.http.get(f"{self.config.url}/v1/records/{row.identifier}")
        except httpx.HTTPError:
            return None
        if response.status_code == 404:
            return row.op == "delete"
        if response.status_code != 200:
            return None
        return row.op == "upsert" and response.json().get("idempotency_key") == row.idempotency_key

    # --- the public call --------------------------------------------------------------------

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """Every row's outcome by idempotency key. Retryable rows are resent in later rounds
        (with backoff), unknown rows read back and resent (the endpoint is idempotent)."""
        rows = list(rows)
        by_key = {r.idempotency_key: r for r in rows}
        outcomes: dict[str, Outcome] = {}
        pending = rows
        for round_number in range(1, self.config.max_attempts + 1):
            for batch in batches(pending, self.config.max_rows, self.config.max_bytes):
                self._send_batch(batch, outcomes)
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
        return outcomes


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
