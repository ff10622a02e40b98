"""Platform-side unsubscribes into consent (grain: one consent event per sync, identifier and
platform opt-out).

Every configured sync whose destination reports unsubscribes (registry
`reports_unsubscribes=True`, the client's `unsubscribes(since)`) is asked for the opt-outs since
its cursor; they are written as one landing file in the consent source's folder
(`consent/events/dt=<as_of>/`; opt-outs up to the end of as_of, later ones wait for their night)
in the consent__events contract's shape: a revocation of the
sync's channel and purpose, `source = email_platform`, `consent_event_id` opening with
`platform_unsubscribe:<kind>:` so consent_state can tell where it came from. The file then goes
through the ordinary ingestion path (row accounting, quarantine, gates). The cursor per sync
(the latest opt-out time seen) is kept in `privacy.platform_unsubscribe_cursors`.
A sync keyed by a contact point (email, phone) gives it as is; a sync keyed by another
customer_360 column (customer_id) gives the person's contact point of the sync's channel from
`marts.customer_360` (an identifier it no longer holds is skipped: nobody to revoke).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from orchestration.engine import Connection

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


def ensure_cursors(con: Connection) -> None:
    con.execute("create schema if not exists privacy")
    con.execute(
        f"create table if not exists {CURSORS} (sync_id varchar primary key, "
        "cursor_at timestamptz not null, updated_at timestamptz not null)"
    )


def cursor(con: Connection, sync_id: str) -> dt.datetime | None:
    """The latest opt-out time already landed for `sync_id` (None: never asked)."""
    ensure_cursors(con)
    row = con.execute(f"select cursor_at from {CURSORS} where sync_id = ?", [sync_id]).fetchone()
    return None if row is None else row[0]


def _contact_points(con: Connection, sync: Any, identifiers: set[str]) -> dict[str, str]:
    """identifier → the sync channel's contact point, from marts.customer_360."""
    from orchestration.activation.sync_definition import CHANNEL_CONTACT_COLUMN

    column = CHANNEL_CONTACT_COLUMN.get(sync.channel)
    exists = con.execute(
        "select count(*) from information_schema.columns where table_schema = 'marts' "
        "and table_name = 'customer_360' and column_name in (?, ?)",
        [sync.identifier, column],
    ).fetchall()[0][0]  # fetched to the end: DuckDB registers nothing while a result is open
    if not identifiers or column is None or exists < 2:
        return {}
    # the identifiers as a registered relation: a list parameter is DuckDB's only
    con.register("_c360_unsubscribed", pa.table({"v": pa.array(sorted(identifiers), pa.string())}))
    try:
        rows = con.execute(
            f'select "{sync.identifier}"::varchar, "{column}" from marts.customer_360 '
            f'where "{sync.identifier}"::varchar in (select v from _c360_unsubscribed) '
            f'and "{column}" is not null'
        ).fetchall()
    finally:
        con.unregister("_c360_unsubscribed")
    return {str(i): str(c) for i, c in rows}


def _event_id(kind: str, sync_id: str, identifier: str, at: dt.datetime) -> str:
    digest = hashlib.sha256(f"{sync_id}\x1f{identifier}\x1f{at.isoformat()}".encode()).hexdigest()
    return f"platform_unsubscribe:{kind}:{digest[:24]}"


def collect(
    con: Connection,
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
    cutoff = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
    rows: list[dict[str, str]] = []
    moves: list[tuple[str, dt.datetime]] = []
    for sync in syncs:
        spec = registry.get(sync.destination)
        if not spec.reports_unsubscribes:
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
        keyed = sync.identifier in ("email", "phone")
        contact = {} if keyed else _contact_points(con, sync, {u.identifier for u in found})
        kind = sync.identifier if keyed else ("phone" if sync.channel == "sms" else "email")
        latest = since
        count = 0
        for u in found:
            at = u.occurred_at if u.occurred_at.tzinfo else u.occurred_at.replace(tzinfo=dt.UTC)
            # an opt-out after the night's as_of belongs to a later partition (the consent
            # contract quarantines a future captured_at): the cursor stays before it
            if (since is not None and at <= since) or at >= cutoff:
                continue
            latest = at if latest is None or at > latest else latest
            point = u.identifier if keyed else contact.get(u.identifier)
            if not point:  # a customer no longer in customer_360: nobody to revoke
                continue
            rows.append({
                "consent_event_id": _event_id(spec.kind, sync.name, u.identifier, at),
                "contact_point": point,
                "contact_point_type": kind,
                "channel": u.channel or sync.channel,
                "purpose": sync.purpose,
                "status": "revoked",
                "captured_at": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "expires_at": "",
                "source": "email_platform",
            })  # fmt: skip
            count += 1
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
        con.execute(
            f"insert into {CURSORS} values (?, ?, ?) on conflict (sync_id) do update "
            "set cursor_at = excluded.cursor_at, updated_at = excluded.updated_at",
            [sync_id, at, now],
        )
    return out
