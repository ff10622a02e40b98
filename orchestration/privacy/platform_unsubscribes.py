"""Platform-side unsubscribes into consent (grain: one consent event per sync, identifier and
platform opt-out).

Every configured sync whose destination reports unsubscribes (registry
`reports_unsubscribes=True`, the client's `unsubscribes(since)`) is asked for the opt-outs since
its cursor; they are written as one landing file in the consent source's folder
(`consent/events/dt=<as_of>/`) in the consent__events contract's shape: a revocation of the
sync's channel and purpose, `source = email_platform`, `consent_event_id` opening with
`platform_unsubscribe:<kind>:` so consent_state can tell where it came from. The file then goes
through the ordinary ingestion path (row accounting, quarantine, gates). The cursor per sync
(the latest opt-out time seen) is kept in `privacy.platform_unsubscribe_cursors`.
Only syncs keyed by a contact point (email or phone) can be turned into consent events.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

CURSORS = "privacy.platform_unsubscribe_cursors"
COLUMNS = ("consent_event_id", "contact_point", "contact_point_type", "channel", "purpose",
           "status", "captured_at", "expires_at", "source")  # fmt: skip


@dataclass
class Collected:
    """What one collection did: events written per sync, the file, syncs that failed."""

    events: dict[str, int] = field(default_factory=dict)
    file: Path | None = None
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.events.values())


def ensure_cursors(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists privacy")
    con.execute(
        f"create table if not exists {CURSORS} (sync_id varchar primary key, "
        "cursor_at timestamptz not null, updated_at timestamptz not null)"
    )


def cursor(con: duckdb.DuckDBPyConnection, sync_id: str) -> dt.datetime | None:
    """The latest opt-out time already landed for `sync_id` (None: never asked)."""
    ensure_cursors(con)
    row = con.execute(f"select cursor_at from {CURSORS} where sync_id = ?", [sync_id]).fetchone()
    return None if row is None else row[0]


def _event_id(kind: str, sync_id: str, identifier: str, at: dt.datetime) -> str:
    digest = hashlib.sha256(f"{sync_id}\x1f{identifier}\x1f{at.isoformat()}".encode()).hexdigest()
    return f"platform_unsubscribe:{kind}:{digest[:24]}"


def collect(
    con: duckdb.DuckDBPyConnection,
    syncs: Iterable[Any],
    landing: Path,
    as_of: dt.date,
    run_id: str,
    clients: Callable[[Any], Any] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Collected:
    """Ask every sync that can report unsubscribes for those since its cursor; land them as one
    consent-events file; move each sync's cursor. `clients(sync)` builds a sync's client
    (default: the registry's build). A sync whose listing fails keeps its cursor."""
    from orchestration.activation.destinations import registry

    build = clients or (lambda sync: registry.build(sync, log))
    out = Collected()
    rows: list[dict[str, str]] = []
    moves: list[tuple[str, dt.datetime]] = []
    for sync in syncs:
        spec = registry.get(sync.destination)
        if not spec.reports_unsubscribes or sync.identifier not in ("email", "phone"):
            continue
        since = cursor(con, sync.name)
        try:
            client = build(sync)
            found = list(client.unsubscribes(since))
            if hasattr(client, "close"):
                client.close()
        except Exception as exc:  # one platform down does not stop the others
            out.failed[sync.name] = type(exc).__name__
            log(f"platform unsubscribes: {sync.name}: listing failed ({type(exc).__name__})")
            continue
        latest = since
        count = 0
        for u in found:
            at = u.occurred_at if u.occurred_at.tzinfo else u.occurred_at.replace(tzinfo=dt.UTC)
            if (since is not None and at <= since) or not u.identifier:
                continue
            rows.append({
                "consent_event_id": _event_id(spec.kind, sync.name, u.identifier, at),
                "contact_point": u.identifier,
                "contact_point_type": "email" if sync.identifier == "email" else "phone",
                "channel": u.channel or sync.channel,
                "purpose": sync.purpose,
                "status": "revoked",
                "captured_at": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "expires_at": "",
                "source": "email_platform",
            })  # fmt: skip
            count += 1
            latest = at if latest is None or at > latest else latest
        out.events[sync.name] = count
        if latest is not None:
            moves.append((sync.name, latest))
    if rows:
        folder = landing / "consent" / "events" / f"dt={as_of.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"platform_unsubscribes__{run_id[:12] or 'run'}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        out.file = path
    # the cursor moves only once the file holding its events is written
    ensure_cursors(con)
    now = dt.datetime.now(dt.UTC)
    for sync_id, at in moves:
        con.execute(f"insert or replace into {CURSORS} values (?, ?, ?)", [sync_id, at, now])
    return out
