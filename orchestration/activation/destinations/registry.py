"""The destination registry: every kind of destination a sync YAML may name, one module each.

Add a destination = one module + a sync YAML
--------------------------------------------
1. Write `orchestration/activation/destinations/<kind>.py` (or any importable module named in
   `C360_DESTINATION_MODULES`, comma-separated, for destinations kept outside this package).
2. In it, declare a module-level `DESTINATION = DestinationSpec(...)`:

   * `kind`: the name a sync YAML writes as `destination:` (lowercase, `[a-z][a-z0-9_]*`).
   * `config`: a pydantic model (subclass `DestinationConfig`) of the sync YAML's `config:`
     mapping — the sync's own endpoint and the NAMES of the env vars holding its credentials
     (type them `EnvName`: a value that is not an env var name, such as a key pasted in, is
     refused). Validation errors name the sync file and the field (`x.yml: config.api_key_env:
     ...`); a `model_validator` can read `info.context`: "fields" (the sync's field names),
     "columns" (field → customer_360 column) and "identifier" (the sync's identifier).
   * An HTTP platform subclasses `http_platform.PlatformConfig` (endpoint, timeout and retry
     keys) and `http_platform.PlatformClient`, the one client every platform uses: retries
     (Retry-After on 429/503, 5xx backoff, bounded attempts), timeouts as unknown rows, limits,
     batching per op, bisecting refused requests, read-back of timed-out rows. It declares its
     spec with `_platform_spec.platform_spec(...)`.
   * `limits`: `Limits(batch_rows=..., max_in_flight=..., rate_per_second=...)` — the largest
     request the platform takes and the defaults; a sync YAML may lower them (`batch_rows`,
     `batch_bytes`, `max_in_flight`, `rate_per_second` at its top level), never raise them.
   * `build(sync, log) -> client`: the client for one sync (read its env vars here, raising one
     of `errors` naming the env var when one is missing — never echoing a value).
   * `errors`: the exception types meaning "this sync cannot run" (missing env var, refused
     credentials): the sync is skipped and the run fails naming it; other syncs still run.
   * `modes`: the sync modes it supports (default all; `mirror` and `delete` need removals).
3. The client answers `send(rows) -> {idempotency_key: Outcome}` (the `Destination` protocol
   below). Each `Row` has `identifier`, `op` ("upsert" | "delete": a delete removes the person
   from the audience), `fields` (destination field → value) and `idempotency_key`. Every row
   must end `ok`, `rejected` (the platform's reason: a data problem; parked after the sync's
   `max_attempts`), `retryable` or `unknown` (sent, answer lost: read it back before resending
   it if the platform is not idempotent). Optional capabilities, found with `hasattr`:

   * `send_encoded(EncodedRows)`: rows as SQL-built JSON texts (the generic webhook does this);
   * `delete(identifiers) -> {identifier: Outcome}`: erase the PERSON at the platform (not only
     from one audience) — used by erasure, which records the outcome as the acknowledgement;
     set `deletes=True` on the spec when the client has it;
   * `unsubscribes(since) -> Iterable[PlatformUnsubscribe]`: opt-outs that happened at the
     platform (unsubscribe link, complaint) since a time, for the closed loop that feeds them
     into consent; set `reports_unsubscribes=True` on the spec when the client has it;
   * `close()`: called after the sync.

4. Write the sync YAML in `dbt_project/syncs/` with `destination: <kind>` and its `config:`,
   and a test against a local server of the platform (tests/servers/). Nothing else changes:
   sync validation, the Dagster assets, the failed-row check, `c360 sync --dry-run` and the
   runner all read this registry.

`style="file"` destinations (file_drop) write the whole consented audience as one file per
sync and as_of (`write`, run by activation.runner); every other destination is a diff sync
(activation.diff_runner): only changes are sent, each row's outcome recorded.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Protocol

from orchestration.activation.sync_definition import DestinationConfig

if TYPE_CHECKING:
    import datetime as dt

    from orchestration.activation.destinations.rows import Outcome, Row
    from orchestration.activation.sync_definition import SyncDefinition

MODES = ("upsert", "update_only", "create_only", "mirror", "delete")
KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
EXTRA_MODULES_ENV = "C360_DESTINATION_MODULES"


@dataclass(frozen=True)
class Limits:
    """What one request to the platform may hold, and how hard the client may push.
    `max_*` are the platform's ceilings; the others the defaults a sync YAML may lower."""

    batch_rows: int = 1000
    max_batch_rows: int | None = None  # None: batch_rows is the ceiling too
    batch_bytes: int = 1_000_000
    max_batch_bytes: int | None = None
    max_in_flight: int = 2  # requests under way at once
    rate_per_second: float | None = None  # requests started per second (None: unlimited)

    @property
    def rows_ceiling(self) -> int:
        return self.max_batch_rows or self.batch_rows

    @property
    def bytes_ceiling(self) -> int:
        return self.max_batch_bytes or self.batch_bytes


@dataclass(frozen=True)
class PlatformUnsubscribe:
    """One opt-out that happened at a platform (grain: identifier × channel × time): what the
    closed loop turns into a consent event."""

    identifier: str  # the sync's identifier value as the platform knows it (email, phone, id)
    channel: str  # email | sms
    occurred_at: dt.datetime
    reason: str = "unsubscribed"  # unsubscribed | complaint | bounce


class Destination(Protocol):
    """What the runner needs of a diff destination's client (see the module docstring for the
    optional delete / unsubscribes / send_encoded / close)."""

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]: ...


@dataclass(frozen=True)
class DestinationSpec:
    """One kind of destination: see the module docstring."""

    kind: str
    description: str
    config: type[DestinationConfig] = DestinationConfig
    limits: Limits = Limits()
    build: Callable[[SyncDefinition, Callable[[str], None]], Any] | None = None
    errors: tuple[type[Exception], ...] = ()
    modes: tuple[str, ...] = MODES
    style: Literal["diff", "file"] = "diff"
    formats: tuple[str, ...] = ()  # file style: the formats it writes, the first the default
    write: Callable[..., Any] | None = None  # file style: file_drop.write_audience's signature
    # config keys a sync YAML may also write at its top level (file_drop's uri, postgres_table's
    # table: written there before `config:` existed)
    top_level: tuple[str, ...] = ()
    deletes: bool = False  # the client has delete(identifiers)
    reports_unsubscribes: bool = False  # the client has unsubscribes(since)
    module: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not KIND.match(self.kind):
            raise ValueError(f"destination kind {self.kind!r} must match {KIND.pattern}")
        if self.style == "diff" and self.build is None:
            raise ValueError(f"destination {self.kind!r}: a diff destination needs build")
        if self.style == "file" and (self.write is None or not self.formats):
            raise ValueError(f"destination {self.kind!r}: a file destination needs write, formats")
        bad = set(self.modes) - set(MODES)
        if bad:
            raise ValueError(f"destination {self.kind!r}: unknown modes {sorted(bad)}")


_REGISTRY: dict[str, DestinationSpec] = {}
_LOCK = threading.RLock()
_DISCOVERED: set[str] = set()


def register(spec: DestinationSpec, module: str = "") -> DestinationSpec:
    """Add `spec` (discovery calls this for each module's DESTINATION). Registering a kind twice
    from two modules is an error; the same module again (a reload) replaces it."""
    with _LOCK:
        known = _REGISTRY.get(spec.kind)
        if known is not None and known.module and module and known.module != module:
            raise ValueError(
                f"destination kind {spec.kind!r} declared by {known.module} and {module}"
            )
        if module and spec.module != module:
            spec = DestinationSpec(**{**spec.__dict__, "module": module})
        _REGISTRY[spec.kind] = spec
        return spec


def reset() -> None:
    """Forget what discovery found (tests that register a destination of their own): the next
    lookup imports and registers the modules again."""
    with _LOCK:
        _REGISTRY.clear()
        _DISCOVERED.clear()


def _modules() -> list[str]:
    package = importlib.import_module(__package__ or "orchestration.activation.destinations")
    names = [
        f"{package.__name__}.{m.name}"
        for m in pkgutil.iter_modules(package.__path__)
        if not m.name.startswith("_") and m.name != "registry"
    ]
    extra = [n.strip() for n in os.environ.get(EXTRA_MODULES_ENV, "").split(",") if n.strip()]
    return names + extra


def _discover() -> None:
    """Import every destination module not imported yet; register its DESTINATION. A module
    that fails to import raises: a destination silently missing would skip its syncs."""
    with _LOCK:
        for name in _modules():
            if name in _DISCOVERED:
                continue
            module: ModuleType = importlib.import_module(name)
            spec = getattr(module, "DESTINATION", None)
            if isinstance(spec, DestinationSpec):
                register(spec, name)
            _DISCOVERED.add(name)


def destinations() -> dict[str, DestinationSpec]:
    """Every registered destination by kind."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def kinds(style: Literal["diff", "file"] | None = None) -> tuple[str, ...]:
    """The registered kinds (of one style if given), sorted."""
    return tuple(k for k, s in destinations().items() if style is None or s.style == style)


def get(kind: str) -> DestinationSpec:
    """The spec of `kind`; KeyError naming the known kinds when there is none."""
    found = destinations().get(kind)
    if found is None:
        raise KeyError(f"no destination {kind!r} (known: {', '.join(kinds())})")
    return found


def build(sync: SyncDefinition, log: Callable[[str], None] = lambda message: None) -> Any:
    """The client of a diff sync's destination (close it after use when it has close())."""
    spec = get(sync.destination)
    if spec.build is None:
        raise ValueError(f"{sync.path}: destination {sync.destination!r} is not a diff sync")
    return spec.build(sync, log)


def config_errors() -> tuple[type[Exception], ...]:
    """Exception types any destination raises for a sync that cannot run (config, credentials)."""
    return tuple({e for spec in destinations().values() for e in spec.errors})


def env_value(name: str, error: type[Exception], what: str = "") -> str:
    """The value of env var `name`, or `error` naming the variable (never a value)."""
    value = os.environ.get(name)
    if not value:
        raise error(f"{name} is not set" + (f" ({what})" if what else ""))
    return value


class RateLimiter:
    """At most `per_second` request starts per second across threads (None: no limit)."""

    def __init__(
        self, per_second: float | None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.sleep, self._next, self._lock = sleep, 0.0, threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.sleep(start - now)


def sync_limits(sync: SyncDefinition) -> tuple[int, int, int, float | None]:
    """(batch_rows, batch_bytes, max_in_flight, rate_per_second) of a sync: its YAML's values
    where given, else the destination's defaults."""
    spec = get(sync.destination)
    return (
        sync.batch_rows,
        sync.batch_bytes,
        sync.max_in_flight or spec.limits.max_in_flight,
        sync.rate_per_second if sync.rate_per_second is not None else spec.limits.rate_per_second,
    )
