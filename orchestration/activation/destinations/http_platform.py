"""The one HTTP client of the campaign-platform destinations (Braze, Mailchimp, Google Ads,
Meta, Klaviyo, Mailman): one per sync, honouring the sync's limits (rows per request, requests
in flight, requests per second) and handling every platform's faults the same way.

Requests (`PlatformClient.request`, retried with tenacity, at most `max_attempts` attempts):
429 and 503 wait Retry-After (bounded by `max_retry_after_seconds`; a platform whose throttle
answer is another status says so in `throttled`, and how long it asks in `retry_after`); other
5xx and dropped connections back off exponentially (`backoff_seconds`, doubling); a timeout of a
write is answered at once as `unknown` — the platform may have applied the request, so the caller
reads it back or resends it only where a resend is idempotent — while a timed-out read (GET,
HEAD) is retried like a dropped connection, so a slow read-back does not turn into a resend; 401/403 stop the sync
(`auth_error`). Credentials come from env vars the sync's config names (bearer or another
header, or HTTP basic), never from the YAML.

Rows (`send`, for platforms whose requests carry rows, e.g. Braze and Mailchimp): a platform
module writes `apply(op, rows)` (one request's rows of one op, each row's (status, reason) in
order) and, where the platform can say, `read_back(rows)`. Rows go by op in requests of
`batch_rows(op)`, up to `max_in_flight` at once while the platform is calm; a request refused
as a whole (400, 413, 422) is bisected down to its bad rows; after a round, unknown rows are
read back (after a timeout, one timeout's wait first, so a request still on its way lands before
it is looked for): a row the platform holds as sent is `ok` and NOT resent (what keeps a row from
being applied twice on platforms without idempotency keys); the others are resent in later
rounds.
Platforms whose writes are jobs (Google Ads, Klaviyo) or need a ledger (Meta) write their own
`send` over `request`. Row grain: one person (identifier) per sync.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import httpx
from pydantic import Field, ValidationInfo, field_validator, model_validator
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, wait_exponential

from orchestration.activation.destinations.registry import RateLimiter, env_value, sync_limits
from orchestration.activation.destinations.rows import Outcome, Row
from orchestration.activation.sync_definition import DestinationConfig
from orchestration.redaction import redact, redact_logger

if TYPE_CHECKING:
    from orchestration.activation.sync_definition import SyncDefinition

redact_logger("httpx")

RowResult = tuple[str, str]  # (status, reason) of one row in one request
T = TypeVar("T")
LOOPBACK = ("http://127.0.0.1", "http://localhost", "http://[::1]")
# reads change nothing at the platform: a timed-out one is safe to repeat
SAFE_METHODS = frozenset({"GET", "HEAD"})


class PlatformConfigError(ValueError):
    """A platform sync cannot run: a missing env var or a bad setting (names it, never a value)."""


class PlatformAuthError(RuntimeError):
    """The platform refused the credentials (401/403): not a data problem, the sync stops."""


def platform_errors(
    platform: str, module: str
) -> tuple[type[PlatformConfigError], type[PlatformAuthError]]:
    """A platform's own pair of errors, `<Platform>ConfigError` and `<Platform>AuthError`
    (defined in `module`), so a caller can tell which platform refused without every platform
    module writing the same two classes."""
    name = platform.replace(" ", "")
    config = type(f"{name}ConfigError", (PlatformConfigError,), {
        "__module__": module,
        "__doc__": f"A {platform} sync cannot run: a missing env var or a bad setting (named).",
    })  # fmt: skip
    auth = type(f"{name}AuthError", (PlatformAuthError,), {
        "__module__": module, "__doc__": f"{platform} refused the credentials (401/403).",
    })  # fmt: skip
    return config, auth


class PlatformConfig(DestinationConfig):
    """What every platform sync's `config:` holds: the API endpoint (http(s), no credentials
    in it; https only where `https_only`, loopback excepted) and how the client waits for it.
    A platform's config subclasses this and adds its own keys (ids, credential env var names),
    and may say which sync fields identify a person to it (`identifying_fields`, at least one of
    them mapped; `identifying_rule` says so to the user, by default "needs email or phone among
    the fields") or check the field names itself
    (`check_fields`)."""

    https_only: ClassVar[bool] = False
    config_error: ClassVar[type[Exception]] = PlatformConfigError  # a sync of it cannot run
    identifying_fields: ClassVar[frozenset[str]] = frozenset()
    identifying_rule: ClassVar[str] = ""

    endpoint: str
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if cls.https_only and not value.startswith(("https://", *LOOPBACK)):
            raise ValueError("must be an https:// URL (the platform's API endpoint)")
        if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
            raise ValueError("must be an http(s):// URL")
        if "@" in value.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("credentials must not be written in the endpoint")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _sync_fields(self, info: ValidationInfo) -> Self:
        """The sync's field names (validation context "fields", when validated for a sync)
        suit the platform: `check_fields`, then one of `identifying_fields` among them."""
        fields = set((info.context or {}).get("fields") or ())
        if fields:
            self.check_fields(fields)
            if self.identifying_fields and not fields & self.identifying_fields:
                needs = " or ".join(sorted(self.identifying_fields))
                rule = self.identifying_rule or f"needs {needs} among the fields"
                raise ValueError(f"fields: {rule}")
        return self

    def check_fields(self, fields: set[str]) -> None:
        """A platform's own rule on the sync's field names: raise ValueError naming them."""

    def env(self, key: str, what: str) -> str:
        """The value of the env var named by this config's `key` (a credential), or
        `config_error` naming the variable (never a value)."""
        return env_value(getattr(self, key), self.config_error, what)

    def client_settings(
        self, batch_rows: int, max_in_flight: int = 1, rate_per_second: float | None = None
    ) -> ClientSettings:
        """Client settings with these request limits and this config's waits (timeout,
        attempts, backoff)."""
        return ClientSettings(
            batch_rows=batch_rows, max_in_flight=max_in_flight, rate_per_second=rate_per_second,
            timeout_seconds=self.timeout_seconds, max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )  # fmt: skip

    def sync_settings(self, sync: SyncDefinition) -> ClientSettings:
        """The client settings of a sync: its YAML's limits (within the platform's) and this
        config's waits."""
        rows, _, in_flight, rate = sync_limits(sync)
        return self.client_settings(rows, in_flight, rate)


class BulkPlatformConfig(PlatformConfig):
    """The config of a platform whose requests carry up to thousands of people or start jobs
    (Google Ads, Meta, Klaviyo): it answers slowly and asks for longer pauses."""

    timeout_seconds: float = Field(default=60.0, gt=0)
    backoff_seconds: float = Field(default=1.0, ge=0)


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


def basic_auth(user: str, password: str) -> str:
    """An `Authorization` header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Answer:
    """A request's outcome: the response, or why none came ('timeout' or 'gave_up: ...')."""

    __slots__ = ("reason", "response", "transient")

    def __init__(
        self, response: httpx.Response | None, reason: str = "", transient: bool = False
    ) -> None:
        self.response, self.reason, self.transient = response, reason, transient

    @property
    def timeout(self) -> bool:
        """No answer in time: the platform may have applied the request."""
        return self.response is None and self.reason == "timeout"

    @property
    def gave_up(self) -> bool:
        """Every attempt refused for a transient reason: not applied."""
        return self.response is None and not self.timeout

    @property
    def status(self) -> int:
        """The HTTP status, 0 without a response."""
        return 0 if self.response is None else self.response.status_code

    def ok(self, *statuses: int) -> bool:
        """A response with one of `statuses`."""
        return self.response is not None and self.response.status_code in statuses

    def json(self) -> Any:
        assert self.response is not None
        try:
            return self.response.json()
        except ValueError:
            return None

    def body(self) -> dict[str, Any]:
        """The JSON object answered ({} without a response or for any other JSON)."""
        if self.response is None:
            return {}
        body = self.json()
        return body if isinstance(body, dict) else {}


class PlatformClient:
    """Base of a platform client for one sync; see the module docstring."""

    platform = "platform"
    auth_env = ""  # the env var(s) the credentials came from, for messages
    auth_error: type[Exception] = PlatformAuthError

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
        rate: RateLimiter | None = None,
    ) -> None:
        self.sync, self.base_url, self.settings = sync, base_url.rstrip("/"), settings
        self.sleep, self.log, self._secrets = sleep, log, [s for s in secrets if s]
        self.http = http or httpx.Client(timeout=settings.timeout_seconds, headers=headers)
        if http is not None:
            self.http.headers.update(headers)
        self.rate = rate or RateLimiter(settings.rate_per_second, sleep)
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

    def throttled(self, response: httpx.Response) -> bool:
        """Whether an answer other than 429/503 is the platform's rate-limit answer."""
        return False

    def retry_after(self, response: httpx.Response, backoff: float) -> float:
        """Seconds the platform asks to wait (Retry-After; `backoff` when it does not say)."""
        try:
            return max(float(response.headers.get("Retry-After", "")), 0.0)
        except ValueError:
            return backoff

    def poll(
        self, read: Callable[[], T], done: Callable[[T], bool], polls: int, seconds: float
    ) -> T:
        """A platform job's state: `read()` until `done(state)`, at most `polls` reads `seconds`
        apart (the platform's job is still under way after that); the last state read."""
        state = read()
        for _ in range(polls - 1):
            if done(state):
                break
            self.sleep(seconds)
            state = read()
        return state

    # --- HTTP with the shared fault handling ---------------------------------------------------

    def redact(self, text: object) -> str:
        return redact(text, self._secrets) if text else ""

    def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One request (`path` under the base URL, or an absolute URL the platform gave), with
        retries on 429/503 (Retry-After), other 5xx, dropped connections and timed-out reads; a
        timed-out write is answered at once (the platform may have applied it: the caller
        decides)."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_result(lambda answer: answer.transient),
            before=self._before_attempt,
            sleep=self.sleep,
            retry_error_callback=lambda state: Answer(
                None,
                f"gave_up: {state.outcome.result().reason} after "  # type: ignore[union-attr]
                f"{state.attempt_number} attempts",
            ),
        )
        return retrying(self._attempt, method, url, **kwargs)

    def _before_attempt(self, state: RetryCallState) -> None:
        """Counts the request; waits while any request of this client was told to wait."""
        with self._lock:
            self.requests += 1
            delay = self._not_before - time.monotonic()
        if delay > 0:
            self.sleep(delay)
        self.rate.wait()

    def _attempt(self, method: str, url: str, **kwargs: Any) -> Answer:
        try:
            response = self.http.request(method, url, **kwargs)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PlatformConfigError(f"{self.platform} endpoint: {self.redact(exc)}") from None
        except httpx.TimeoutException:
            self._calm = False
            return Answer(None, "timeout", transient=method in SAFE_METHODS)
        except httpx.TransportError as exc:
            self._calm = False
            return Answer(None, f"connection error ({type(exc).__name__})", transient=True)
        status = response.status_code
        if status == 429 or self.throttled(response):
            self._calm = False
            return Answer(response, "rate limited", transient=True)
        if status >= 500:
            self._calm = False
            return Answer(response, f"HTTP {status}", transient=True)
        if status in (401, 403):
            raise self.auth_error(
                f"{self.sync}: {self.platform} refused the credentials (HTTP {status}): check "
                f"{self.auth_env or 'the credential env vars'}"
            )
        self._calm = True
        return Answer(response)

    def _wait(self, state: RetryCallState) -> float:
        """Before the next attempt: Retry-After for a rate limit or 503, else backoff."""
        backoff = wait_exponential(
            multiplier=self.settings.backoff_seconds, max=self.settings.max_retry_after_seconds
        )(state)
        answer: Answer = state.outcome.result()  # type: ignore[union-attr]
        response = answer.response
        if response is None or not (response.status_code in (429, 503) or self.throttled(response)):
            return backoff
        wait = min(self.retry_after(response, backoff), self.settings.max_retry_after_seconds)
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + wait)
        self.log(f"{self.sync}: {self.platform} HTTP {response.status_code}, waiting {wait:.1f}s")
        return wait

    def why(self, answer: Answer) -> str:
        """Why a request did not succeed: 'timeout', the give-up reason, or the platform's
        error (secrets cut)."""
        return answer.reason if answer.response is None else self.redact(error_text(answer))

    def outcome(self, answer: Answer, *ok: int) -> Outcome:
        """One request's outcome for every row it carried: ok on one of `ok`, unknown on a
        timeout, retryable when it gave up, else rejected with the platform's error."""
        if answer.ok(*ok):
            return Outcome("ok", "", 1)
        if answer.timeout:
            return Outcome("unknown", "timeout", 1)
        if answer.response is None:
            return Outcome("retryable", answer.reason, 1)
        return Outcome("rejected", self.why(answer), 1)

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
                status, reason = "rejected", self.redact(error_text(answer))
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

    def send_resumed(
        self, rows: Iterable[Row], last_sent: dt.datetime | None = None
    ) -> dict[str, Outcome]:
        """send() for rows an interrupted run may have applied: read back first; rows the
        platform holds as sent are ok without a request, the others are sent. `last_sent`
        (naive UTC): when the interrupted run sent its last request; the read-back waits until
        a timeout after it, as a request still on its way could land after being looked for."""
        rows = list(rows)
        if last_sent is not None:
            since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - last_sent
            wait = self.settings.timeout_seconds - since.total_seconds()
            if wait > 0:
                self.sleep(wait)
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
                if any(outcomes[row.idempotency_key].reason == "timeout" for row in unknown):
                    # a request that timed out may still be queued at the platform: read back
                    # before it lands and the resend applies the row a second time
                    self.sleep(self.settings.timeout_seconds)
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


def error_text(answer: Answer) -> str:
    """`HTTP <status>: <the platform's message>` of a refused request (JSON:API, Google,
    Meta and plain shapes)."""
    body = answer.body()
    error = body.get("error")
    if isinstance(error, dict):
        body = error
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        body = {**errors[0], **body}
    for key in ("detail", "message", "description", "error", "title"):
        if body.get(key) and isinstance(body[key], str):
            return f"HTTP {answer.status}: {body[key]}"
    return f"HTTP {answer.status}"


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive slices of at most `size` items."""
    return [items[i : i + size] for i in range(0, len(items), size)]
