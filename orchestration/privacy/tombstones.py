"""Tombstones: the keyed hashes (keys.keyed_hash) of an erased person's normalised identifiers,
in `audit.erasure_tombstones` (one row per hash). Ingestion drops every row whose identifier
column hashes to one (drop_tombstoned), so a re-delivered file never brings the person back; the
batch counts those rows as `erased` (extracted = loaded + quarantined + deduplicated + erased).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from orchestration.contracts.rules_sql import quote_ident
from orchestration.engine import Connection, table_names
from orchestration.privacy.identifiers import IDENTIFIER_COLUMNS, kind_of_row, normalise
from orchestration.privacy.keys import keyed_hash

TABLE = "audit.erasure_tombstones"
DDL = f"""
create schema if not exists audit;
create table if not exists {TABLE} (
    hash varchar primary key,   -- HMAC-SHA-256 of '<kind>:<normalised value>'
    kind varchar not null,      -- email, phone, crm_contact_id, ... (no value)
    request_id varchar not null,
    created_at timestamp not null,
    scope varchar not null default 'person'  -- person: drops rows of every source;
                                             -- contact_point: of contact-point sources only
);
alter table audit.erasure_tombstones add column if not exists scope varchar default 'person';
"""


def ensure_table(con: Connection) -> None:
    con.execute(DDL)


def tombstone_hashes(con: Connection, person_only: bool = False) -> set[str]:
    """Every tombstone hash (person_only: of scope person); empty when no erasure ever ran."""
    if "erasure_tombstones" not in table_names(con, "audit"):
        return set()
    where = "where scope = 'person'" if person_only else ""
    return {h for (h,) in con.execute(f"select hash from {TABLE} {where}").fetchall()}


def add(
    con: Connection,
    request_id: str,
    anchors: set[tuple[str, str]],
    contact_points: set[tuple[str, str]] = frozenset(),
) -> int:
    """Record the tombstones of one request (add_many of one); returns how many were new."""
    return add_many(con, [(request_id, anchors, contact_points)])


def add_many(
    con: Connection,
    requests: Sequence[tuple[str, set[tuple[str, str]], set[tuple[str, str]]]],
) -> int:
    """Record the tombstones of each (request id, anchors, contact points), in one statement: its
    anchors (scope person: the request's identifier, source and customer ids) and the other
    emails and phones found on the person's records (scope contact_point: they may be a
    household's, so they drop rows of contact-point sources only — engagement, consent — never
    another person's record). A hash already recorded keeps its row; a hash two requests share
    is the first's, and a person anchor before a contact point. Returns how many were new."""
    ensure_table(con)
    rows: dict[str, tuple[str, str, str]] = {}  # hash → (kind, request id, scope), first wins
    for request_id, anchors, contact_points in requests:
        for scope, ids in (("person", anchors), ("contact_point", contact_points)):
            for kind, value in sorted(ids):
                rows.setdefault(keyed_hash(kind, value), (kind, request_id, scope))
    if not rows:
        return 0
    before = con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]
    con.register(
        _NEW,
        pa.table({"hash": list(rows), "kind": [r[0] for r in rows.values()],
                  "request_id": [r[1] for r in rows.values()],
                  "scope": [r[2] for r in rows.values()]}),
    )  # fmt: skip
    try:
        con.execute(
            f"insert into {TABLE} "
            f"select n.hash, n.kind, n.request_id, now(), n.scope from {_NEW} as n "
            f"where not exists (select 1 from {TABLE} as t where t.hash = n.hash)"
        )
    finally:
        con.unregister(_NEW)
    return con.execute(f"select count(*) from {TABLE}").fetchall()[0][0] - before


_NEW = "_c360_new_tombstones"


def drop_tombstoned(con: Connection, contract_id: str, table: str) -> int:
    """Delete from `table` (a batch as read: the contract's columns as text) every row holding an
    identifier with a tombstone; returns the rows deleted. Grain: one row of one batch."""
    columns = IDENTIFIER_COLUMNS.get(contract_id, ())
    if not columns:
        return 0
    from orchestration.privacy.identifiers import PERSON_CONTRACTS

    dead = tombstone_hashes(con, person_only=contract_id in PERSON_CONTRACTS)
    if not dead:
        return 0
    before = con.execute(f"select count(*) from {table}").fetchone()[0]
    for col in columns:
        c = quote_ident(col.column)
        extra = col.region_column or col.type_column
        e = quote_ident(extra) if extra else "null"
        hit = []
        for value, other in con.execute(
            f"select distinct {c}, {e} from {table} where {c} is not null"
        ).fetchall():
            kind = kind_of_row(col, other) if col.type_column else col.kind
            norm = normalise(kind, value, other if col.region_column else None) if kind else None
            if norm is not None and keyed_hash(kind, norm) in dead:
                hit.append(value)
        if hit:
            con.register("_c360_tombstoned", pa.table({"v": sorted(set(hit))}))
            try:
                con.execute(f"delete from {table} where {c} in (select v from _c360_tombstoned)")
            finally:
                con.unregister("_c360_tombstoned")
    return before - con.execute(f"select count(*) from {table}").fetchone()[0]
