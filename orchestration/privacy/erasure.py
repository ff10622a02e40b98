"""Erasure that deletes: every pending erasure request of the night, end to end.

A request (a row of `raw.consent__erasure_requests`: from the consent source, or queued by
`c360 erase` as a landing file of that source) names an email, a phone or a customer id. Its
person is every identifier reachable from it (expand): raw person records holding it, their other
identifiers, and the records `marts.customer_id_map` put in the same customer. Then, per request:

1. raw, quarantine and the staging batch tables: the person's rows deleted (identifier columns
   per contract: identifiers.IDENTIFIER_COLUMNS); reference.phone_numbers: their phone texts;
2. every other table of the warehouse (identity state, segment history, insight tables, ...):
   rows holding their email, phone or customer id deleted — except activation.contact_history,
   pseudonymised (customer_id and contact_point replaced by keyed pseudonyms: counts stay);
3. destinations holding the person: deletes sent, answers recorded (destinations.py);
4. landing files and outbox drops holding them: rewritten atomically or removed (files.py); the
   landing ledger (audit.ingestion_files) gets the new bytes' hash, so the rewritten file is not
   ingested again as new;
5. tombstones of every identifier (tombstones.py): later ingestion drops the person's rows;
6. a receipt in `audit.erasure_receipts`: where, what, when, rows and files touched, the
   destinations' acknowledgements, with identifiers only as keyed hashes.

docs/privacy.md has the per-table decision (rows or columns) and the key's handling.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from orchestration.contracts.rules_sql import quote_ident
from orchestration.paths import landing_dir, outbox_dir
from orchestration.privacy import files, tombstones
from orchestration.privacy.destinations import send_deletes
from orchestration.privacy.identifiers import (
    IDENTIFIER_COLUMNS,
    MAP_SOURCE_KIND,
    PERSON_CONTRACTS,
    IdColumn,
    kind_of_row,
    normalise,
)
from orchestration.privacy.keys import keyed_hash, pseudonym

RECEIPTS = "audit.erasure_receipts"
DDL = f"""
create schema if not exists audit;
create table if not exists {RECEIPTS} (
    request_id varchar primary key,
    source varchar not null,          -- consent_source or cli (request id prefix CLI-)
    requested_at timestamp,
    processed_at timestamp not null,
    as_of date not null,
    run_id varchar,
    identifier_kinds varchar[],       -- the kinds erased (email, phone, crm_contact_id, ...)
    identifier_hashes varchar[],      -- their tombstones (keyed hashes), never the values
    places json not null,             -- [{{place, what, action, rows|files}}]
    rows_touched bigint not null,
    files_touched integer not null,
    destinations json not null,       -- [{{sync, destination, identifier_hash, how, status}}]
    status varchar not null           -- done, or destinations_pending (an answer was not ok)
);
"""
CLI_PREFIX = "CLI-"
_EMPTY_SHA = hashlib.sha256(b"").hexdigest()
BATCH_SUFFIXES = ("__clean", "__ranked", "__verdicts")
_PROTECTED = {("audit", "erasure_receipts"), ("audit", "erasure_tombstones")}
# handled by name (the contracts' tables) or by the destination step; never swept blindly
_SWEEP_SKIP_SCHEMAS = {"raw", "quarantine"}
_SWEEP_SKIP_TABLES = {("activation", "sync_state"), ("activation", "sync_plan"),
                      ("activation", "contact_history")}  # fmt: skip
# schemas whose swept rows are pseudonymised rather than deleted (their grain is an event)
_PSEUDONYMISE_SCHEMAS = {"activation"}

Ids = set[tuple[str, str]]
CONTACT_KINDS = ("email", "phone")


@dataclass
class Request:
    """One pending erasure request and what it reaches."""

    request_id: str
    kind: str
    value: str
    requested_at: dt.datetime | None
    ids: Ids = field(default_factory=set)  # every identifier: anchors and contact points
    # What names the person and no one else: the requested identifier, the source ids of the
    # records found by it or by identity, the customer ids. Person records (CRM, shop, loyalty,
    # web) are found and deleted by these only: an email or phone found on one of them may be a
    # household's, shared with a record of someone else, and reaches only contact-point rows.
    anchors: Ids = field(default_factory=set)
    places: list[dict] = field(default_factory=list)
    rows: int = 0
    files: int = 0
    acks: list[dict] = field(default_factory=list)

    @property
    def source(self) -> str:
        return "cli" if self.request_id.startswith(CLI_PREFIX) else "consent_source"

    def touched(self, place: str, what: str, action: str, rows: int = 0, files_n: int = 0):
        entry = {"place": place, "what": what, "action": action}
        if rows:
            entry["rows"] = rows
            self.rows += rows
        if files_n:
            entry["files"] = files_n
            self.files += files_n
        self.places.append(entry)

    def of_kind(self, kind: str) -> set[str]:
        return {v for k, v in self.ids if k == kind}


def _exists(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? "
            "and table_name = ? and table_type = 'BASE TABLE'",
            [schema, table],
        ).fetchone()[0]
    )


def pending_requests(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> list[Request]:
    """Erasure requests in raw up to the end of as_of without a receipt yet (one per id)."""
    con.execute(DDL)
    if not _exists(con, "raw", "consent__erasure_requests"):
        return []
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    rows = con.execute(
        "select erasure_request_id, any_value(contact_point), any_value(contact_point_type), "
        "min(requested_at) from raw.consent__erasure_requests r where requested_at < ? "
        f"and erasure_request_id not in (select request_id from {RECEIPTS}) "
        "and contact_point is not null group by erasure_request_id order by erasure_request_id",
        [end],
    ).fetchall()
    out = []
    for rid, value, ctype, at in rows:
        kind = kind_of_row(IdColumn("contact_point", "contact_point", type_column="t"), ctype)
        norm = normalise(kind, value) if kind else None
        if norm is not None:
            req = Request(rid, kind, norm, at)
            req.ids.add((kind, norm))
            req.anchors.add((kind, norm))
            out.append(req)
    return out


class _ColumnIndex:
    """Per table and identifier column: normalised (kind, value) → the raw texts holding it."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self._cache: dict[tuple[str, str], dict[tuple[str, str], set]] = {}

    def index(self, table: str, col: IdColumn) -> dict[tuple[str, str], set]:
        key = (table, col.column)
        if key not in self._cache:
            c = quote_ident(col.column)
            extra = col.region_column or col.type_column
            e = quote_ident(extra) if extra else "null"
            idx: dict[tuple[str, str], set] = {}
            for value, other in self.con.execute(
                f"select distinct {c}, {e} from {table} where {c} is not null"
            ).fetchall():
                kind = kind_of_row(col, other) if col.type_column else col.kind
                norm = normalise(kind, value, other if col.region_column else None)
                if kind and norm is not None:
                    idx.setdefault((kind, norm), set()).add(value)
            self._cache[key] = idx
        return self._cache[key]

    def texts(self, table: str, col: IdColumn, ids: Ids) -> set:
        idx = self.index(table, col)
        out: set = set()
        for i in ids:
            out |= idx.get(i, set())
        return out


def _where(columns: tuple[IdColumn, ...], texts: dict[str, set]) -> tuple[str, list]:
    parts, params = [], []
    for col in columns:
        values = texts.get(col.column)
        if values:
            parts.append(f"list_contains(?, {quote_ident(col.column)})")
            params.append(sorted(values, key=str))
    return " or ".join(parts), params


def expand(con: duckdb.DuckDBPyConnection, req: Request, index: _ColumnIndex) -> None:
    """Grow the request to the person: person records holding an anchor, their identifiers (ids
    anchor further; emails and phones only join req.ids), and the records customer_id_map puts
    in the same customer, until nothing new is found."""
    has_map = _exists(con, "marts", "customer_id_map")
    for _ in range(8):
        before = len(req.anchors)
        for cid in PERSON_CONTRACTS:
            if not _exists(con, "raw", cid):
                continue
            cols = IDENTIFIER_COLUMNS[cid]
            table = f"raw.{cid}"
            texts = {c.column: index.texts(table, c, req.anchors) for c in cols}
            where, params = _where(cols, texts)
            if not where:
                continue
            extra = [c.region_column for c in cols if c.region_column]
            names = [c.column for c in cols] + sorted(set(extra))
            sel = ", ".join(quote_ident(n) for n in names)
            for row in con.execute(f"select {sel} from {table} where {where}", params).fetchall():
                got = dict(zip(names, row, strict=True))
                for c in cols:
                    region = got.get(c.region_column) if c.region_column else None
                    norm = normalise(c.kind, got[c.column], region)
                    if norm is not None:
                        req.ids.add((c.kind, norm))
                        if c.kind not in CONTACT_KINDS:
                            req.anchors.add((c.kind, norm))
        if has_map:
            pairs = [(s, v) for s, k in MAP_SOURCE_KIND.items() for v in req.of_kind(k)]
            customers = set(req.of_kind("customer_id"))
            if pairs:
                customers |= {
                    c
                    for (c,) in con.execute(
                        "select distinct customer_id from marts.customer_id_map where "
                        "list_contains(?, source || chr(31) || source_record_id)",
                        [[f"{s}\x1f{v}" for s, v in pairs]],
                    ).fetchall()
                }
            for c in customers:
                req.ids.add(("customer_id", c))
                req.anchors.add(("customer_id", c))
            if customers:
                for source, rid in con.execute(
                    "select source, source_record_id from marts.customer_id_map "
                    "where list_contains(?, customer_id)",
                    [sorted(customers)],
                ).fetchall():
                    if source in MAP_SOURCE_KIND and rid is not None:
                        req.ids.add((MAP_SOURCE_KIND[source], str(rid)))
                        req.anchors.add((MAP_SOURCE_KIND[source], str(rid)))
        if len(req.anchors) == before:
            return


def _erase_contract_tables(con, reqs: list[Request], index: _ColumnIndex) -> None:
    """Rows of the person in raw, quarantine and the staging batch tables of every contract."""
    for cid, cols in IDENTIFIER_COLUMNS.items():
        tables = [("raw", cid), ("quarantine", cid)]
        tables += [("staging", f"batch__{cid}{s}") for s in BATCH_SUFFIXES]
        for schema, name in tables:
            if not _exists(con, schema, name):
                continue
            present = {
                c for (c,) in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ?", [schema, name]
                ).fetchall()
            }  # fmt: skip
            usable = tuple(c for c in cols if c.column in present)
            table = f"{schema}.{quote_ident(name)}"
            all_where = []
            all_params: list = []
            for req in reqs:
                ids = req.anchors if cid in PERSON_CONTRACTS else req.ids
                texts = {c.column: index.texts(table, c, ids) for c in usable}
                where, params = _where(usable, texts)
                if not where:
                    continue
                n = con.execute(f"select count(*) from {table} where {where}", params).fetchone()
                if n[0]:
                    req.touched(f"{schema}.{name}", "the person's rows", "deleted", rows=n[0])
                    all_where.append(f"({where})")
                    all_params += params
            if all_where:
                con.execute(f"delete from {table} where {' or '.join(all_where)}", all_params)


def _erase_phone_lookup(con, reqs: list[Request]) -> None:
    if not _exists(con, "reference", "phone_numbers"):
        return
    for req in reqs:
        phones = sorted(req.of_kind("phone"))
        if not phones:
            continue
        n = con.execute(
            "delete from reference.phone_numbers where list_contains(?, e164)", [phones]
        ).fetchone()[0]
        if n:
            req.touched("reference.phone_numbers", "raw phone texts", "deleted", rows=n)


def _needles(req: Request) -> list[str]:
    """What the sweep compares every text cell with (trimmed, lower case)."""
    return sorted({v.lower() for k, v in req.ids if k in ("email", "phone", "customer_id")})


def _sweep(con, reqs: list[Request]) -> None:
    """Every other base table: rows holding the person's email, phone or customer id deleted
    (pseudonymised in activation)."""
    tables = con.execute(
        "select c.table_schema, c.table_name, list(c.column_name order by c.ordinal_position) "
        "from information_schema.columns c join information_schema.tables t "
        "on c.table_schema = t.table_schema and c.table_name = t.table_name "
        "and c.table_catalog = t.table_catalog "
        "where t.table_type = 'BASE TABLE' and c.data_type = 'VARCHAR' "
        "and t.table_catalog = current_database() group by all order by all"
    ).fetchall()
    for schema, name, columns in tables:
        if schema in _SWEEP_SKIP_SCHEMAS or (schema, name) in _SWEEP_SKIP_TABLES:
            continue
        if (schema, name) in _PROTECTED or (schema == "staging" and name.startswith("batch__")):
            continue
        table = f"{quote_ident(schema)}.{quote_ident(name)}"
        hit = " or ".join(f"list_contains(?, lower(trim({quote_ident(c)})))" for c in columns)
        # one scan with every request's needles first: most tables hold nobody erased
        every = sorted({n for req in reqs for n in _needles(req)})
        if (
            not every
            or not con.execute(
                f"select count(*) from {table} where {hit}", [every] * len(columns)
            ).fetchone()[0]
        ):
            continue
        for req in reqs:
            needles = _needles(req)
            if not needles:
                continue
            params = [needles] * len(columns)
            n = con.execute(f"select count(*) from {table} where {hit}", params).fetchone()[0]
            if not n:
                continue
            if schema in _PSEUDONYMISE_SCHEMAS:
                for c in columns:
                    _pseudonymise_column(con, table, c, needles)
                req.touched(f"{schema}.{name}", "the person's values", "pseudonymised", rows=n)
            else:
                con.execute(f"delete from {table} where {hit}", params)
                req.touched(f"{schema}.{name}", "rows holding the person", "deleted", rows=n)


def _pseudonymise_column(con, table: str, column: str, needles: list[str]) -> int:
    c = quote_ident(column)
    values = [
        v for (v,) in con.execute(
            f"select distinct {c} from {table} where list_contains(?, lower(trim({c})))", [needles]
        ).fetchall()
    ]  # fmt: skip
    if not values:
        return 0
    mapping = pa.table(
        {"v": values, "p": [pseudonym(column, str(v).strip().lower()) for v in values]}
    )
    con.register("_c360_pseudonyms", mapping)
    try:
        return con.execute(
            f"update {table} set {c} = m.p from _c360_pseudonyms m where {table}.{c} = m.v"
        ).fetchone()[0]
    finally:
        con.unregister("_c360_pseudonyms")


def _contact_history(con, reqs: list[Request]) -> None:
    """Pseudonymise contact_history: the person's customer_id and contact_point become keyed
    pseudonyms, every row stays (what was sent, to how many, with which outcome)."""
    if not _exists(con, "activation", "contact_history"):
        return
    table = "activation.contact_history"
    for req in reqs:
        needles = _needles(req)
        if not needles:
            continue
        n = con.execute(
            f"select count(*) from {table} where list_contains(?, lower(trim(customer_id))) "
            "or list_contains(?, lower(trim(contact_point)))",
            [needles, needles],
        ).fetchone()[0]
        if n:
            _pseudonymise_column(con, table, "customer_id", needles)
            _pseudonymise_column(con, table, "contact_point", needles)
            req.touched(table, "customer_id, contact_point", "pseudonymised", rows=n)


def _file_needles(reqs: list[Request], anchors_only: bool) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for req in reqs:
        for i in req.anchors if anchors_only else req.ids:
            out.setdefault(i, set()).add(req.request_id)
    return out


def _file_roots(landing: Path, outbox: Path) -> list[tuple[Path, Path, str, bool]]:
    """(folder, root, label, anchors only): each contract's landing folder (person contracts by
    anchors only, like their raw tables), then the outbox (every identifier)."""
    from orchestration.contracts.model import all_source_contracts

    out = []
    for c in all_source_contracts():
        if c.id in IDENTIFIER_COLUMNS:
            folder = landing / c.source / c.entity
            out.append((folder, landing, "landing", c.id in PERSON_CONTRACTS))
    out.append((outbox, outbox, "outbox", False))
    return out


def _rewrite_files(con, reqs: list[Request], landing: Path, outbox: Path) -> None:
    by_id = {r.request_id: r for r in reqs}
    ledger = _exists(con, "audit", "ingestion_files")
    for folder, root, what, anchors_only in _file_roots(landing, outbox):
        for rw in files.rewrite_tree(folder, _file_needles(reqs, anchors_only)):
            rel = f"{what}/{rw.path.relative_to(root)}"
            action = "removed (no row left)" if rw.removed else "rewritten without the rows"
            for rid, n in rw.rows_by_request.items():
                by_id[rid].touched(rel, "file", action, rows=n, files_n=1)
            if what == "landing" and ledger:
                # the ledger records what the path holds now (a removed file: nothing), so a
                # re-delivery of the old bytes is read again, and its rows dropped as erased
                sha, size = (_EMPTY_SHA, 0) if rw.removed else (rw.sha256, rw.size)
                con.execute(
                    "update audit.ingestion_files set sha256 = ?, size_bytes = ? where path = ?",
                    [sha, size, str(rw.path)],
                )


def _destinations(con, reqs: list[Request], log: Callable[[str], None]) -> None:
    for req in reqs:
        # by anchors: a sync_state row is the person's by its customer_id, or by an identifier
        # only they hold (a household phone may be a sync's key for someone else)
        identifiers = {v for k, v in req.anchors if k in ("email", "phone", "customer_id")}
        acks = send_deletes(con, req.request_id, req.of_kind("customer_id"), identifiers, log)
        req.acks = [a.as_dict() for a in acks]
        for a in acks:
            req.touched(f"destination:{a.sync}", a.destination, f"{a.how}: {a.status}")


def _receipt(con, req: Request, as_of: dt.date, run_id: str | None) -> None:
    kinds = sorted({k for k, _ in req.ids})
    status = "done" if all(a["status"] == "ok" for a in req.acks) else "destinations_pending"
    con.execute(
        f"insert into {RECEIPTS} values (?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [req.request_id, req.source, req.requested_at, as_of, run_id, kinds,
         sorted({keyed_hash(k, v) for k, v in req.ids}), json.dumps(req.places),
         req.rows, req.files, json.dumps(req.acks), status],
    )  # fmt: skip


@dataclass(frozen=True)
class ErasureSummary:
    requests: int
    rows: int
    files: int
    tombstones: int
    destinations_pending: int


def erase_pending(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    run_id: str | None = None,
    landing: Path | None = None,
    outbox: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> ErasureSummary:
    """Carry out every pending erasure request (see the module doc); one receipt each."""
    reqs = pending_requests(con, as_of)
    if not reqs:
        return ErasureSummary(0, 0, 0, 0, 0)
    tombstones.ensure_table(con)
    # One transaction: a run killed part-way leaves the warehouse as it was and no receipt, so
    # the rerun finds the same person again (a destination's delete and a file rewrite repeated
    # are no-ops; a rewritten file whose ledger update was lost is read once more, as duplicates).
    con.execute("begin transaction")
    try:
        index = _ColumnIndex(con)
        for req in reqs:
            expand(con, req, index)
        log(f"erasure: {len(reqs)} request(s), {sum(len(r.ids) for r in reqs)} identifiers")
        # destinations first: they are found through sync_state, which the sweep must not empty
        _destinations(con, reqs, log)
        _erase_contract_tables(con, reqs, index)
        _erase_phone_lookup(con, reqs)
        _contact_history(con, reqs)
        _sweep(con, reqs)
        _rewrite_files(con, reqs, landing or landing_dir(), outbox or outbox_dir())
        new = 0
        for req in reqs:
            new += tombstones.add(con, req.request_id, req.anchors, req.ids - req.anchors)
            _receipt(con, req, as_of, run_id)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("checkpoint")
    pending = sum(1 for r in reqs if any(a["status"] != "ok" for a in r.acks))
    return ErasureSummary(len(reqs), sum(r.rows for r in reqs), sum(r.files for r in reqs),
                          new, pending)  # fmt: skip
