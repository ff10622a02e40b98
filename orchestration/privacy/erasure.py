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
   ingested again as new; the same for the S3 landing objects already downloaded and the S3
   file drops (s3_objects.py);
5. tombstones of every identifier (tombstones.py): later ingestion drops the person's rows;
6. a receipt in `audit.erasure_receipts`: where, what, when, rows and files touched, the
   destinations' acknowledgements, with identifiers only as keyed hashes.

docs/privacy.md has the per-table decision (rows or columns) and the key's handling.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from orchestration.contracts.rules_sql import quote_ident, quote_literal
from orchestration.engine import (
    Connection,
    changed_rows,
    create_temp_table,
    dialect_of,
    row_locator,
    table_exists,
    temp_name,
)
from orchestration.identity import phones
from orchestration.ingest.file_hash import settled_signature
from orchestration.paths import landing_dir, outbox_dir
from orchestration.privacy import files, s3_objects, tombstones
from orchestration.privacy.column_index import ColumnIndex
from orchestration.privacy.destinations import deliver, holders
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
                      ("activation", "contact_history"),
                      ("reference", "phone_numbers")}  # fmt: skip
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


# The text column types the sweep reads: DuckDB's VARCHAR, Postgres' text and varchar.
_TEXT_TYPES = ("VARCHAR", "text", "character varying")


def _exists(con: Connection, schema: str, table: str) -> bool:
    return table_exists(con, schema, table, views=False)


def pending_requests(con: Connection, as_of: dt.date) -> list[Request]:
    """Erasure requests in raw up to the end of as_of without a receipt yet (one per id, its
    earliest row; in request id order)."""
    con.execute(DDL)
    if not _exists(con, "raw", "consent__erasure_requests"):
        return []
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    # a request delivered twice: the contact point and type of one row, its earliest
    rows = con.execute(
        "select erasure_request_id, contact_point, contact_point_type, first_at from ("
        "select erasure_request_id, contact_point, contact_point_type, "
        "min(requested_at) over (partition by erasure_request_id) as first_at, "
        "row_number() over (partition by erasure_request_id "
        "order by requested_at, contact_point, contact_point_type) as n "
        "from raw.consent__erasure_requests where requested_at < ? "
        f"and erasure_request_id not in (select request_id from {RECEIPTS}) "
        "and contact_point is not null) as r where n = 1",
        [end],
    ).fetchall()
    out = []
    # ids in byte order (a Postgres collation may order text otherwise): a request's index
    # decides which one a row shared by two counts for
    for rid, value, ctype, at in sorted(rows, key=lambda row: str(row[0]).encode()):
        kind = kind_of_row(IdColumn("contact_point", "contact_point", type_column="t"), ctype)
        norm = normalise(kind, value) if kind else None
        if norm is not None:
            req = Request(rid, kind, norm, at)
            req.ids.add((kind, norm))
            req.anchors.add((kind, norm))
            out.append(req)
    return out


class _Temp:
    """Arrow tables registered for one query (request index `r`, value `v`; DuckDB: views,
    Postgres: temp tables); unregistered on exit. Joins on them are equality joins."""

    def __init__(self, con: Connection):
        self.con = con
        self.names: list[str] = []

    def add(self, pairs: list[tuple[int, object]]) -> str:
        name = f"_c360_erasure_{len(self.names)}"
        self.con.register(
            name,
            pa.table({"r": pa.array([r for r, _ in pairs], pa.int64()),
                      "v": pa.array([v for _, v in pairs])}),
        )  # fmt: skip
        self.names.append(name)
        return name

    def __enter__(self) -> _Temp:
        return self

    def __exit__(self, *exc) -> None:
        for name in self.names:
            self.con.unregister(name)


def _column_joins(
    tmp: _Temp,
    table: str,
    cols: Sequence[IdColumn],
    reqs: list[Request],
    index: ColumnIndex,
    anchors: bool,
) -> list[tuple[str, str]]:
    """(column expression, registered pairs) for each of `cols` that holds an identifier of a
    request (its anchors only when `anchors`): the joins `_hits_sql` and expansion run."""
    found = index.pairs(table, cols, [req.anchors if anchors else req.ids for req in reqs])
    return [
        (f"t.{quote_ident(c.column)}", tmp.add(found[c.column]))
        for c in cols
        if found.get(c.column)
    ]


def _hits_sql(con: Connection, table: str, joins: list[tuple[str, str]]) -> str:
    """(rid, r): the rows of `table` each request reaches (rid: row_id), one equality join per
    (column expression, registered pairs)."""
    rid = row_locator(con)
    return " union all ".join(
        f"select t.{rid} as rid, m.r from {table} t join {m} m on {expr} = m.v" for expr, m in joins
    )


def expand_all(con: Connection, reqs: list[Request], index: ColumnIndex) -> None:
    """Grow every request to its person, all requests at once: person records holding an anchor,
    their identifiers (ids anchor further; emails and phones only join req.ids), and the records
    customer_id_map puts in the same customer; a request stops when a pass finds it no new anchor
    (at most 8 passes)."""
    has_map = _exists(con, "marts", "customer_id_map")
    active = list(reqs)
    for _ in range(8):
        if not active:
            return
        before = [len(r.anchors) for r in active]
        for cid in PERSON_CONTRACTS:
            if not _exists(con, "raw", cid):
                continue
            cols = IDENTIFIER_COLUMNS[cid]
            table = f"raw.{quote_ident(cid)}"  # the name _erase_contract_tables indexes
            extra = [c.region_column for c in cols if c.region_column]
            names = [c.column for c in cols] + sorted(set(extra))
            sel = ", ".join(f"t.{quote_ident(n)}" for n in names)
            with _Temp(con) as tmp:
                joins = _column_joins(tmp, table, cols, active, index, anchors=True)
                if not joins:
                    continue
                rows = con.execute(
                    " union ".join(
                        f"select m.r, {sel} from {table} t join {m} m on {expr} = m.v"
                        for expr, m in joins
                    )
                ).fetchall()
            for r, *values in rows:
                req = active[r]
                got = dict(zip(names, values, strict=True))
                for c in cols:
                    region = got.get(c.region_column) if c.region_column else None
                    norm = normalise(c.kind, got[c.column], region)
                    if norm is not None:
                        req.ids.add((c.kind, norm))
                        if c.kind not in CONTACT_KINDS:
                            req.anchors.add((c.kind, norm))
        if has_map:
            _expand_by_map(con, active)
        active = [r for r, n in zip(active, before, strict=True) if len(r.anchors) != n]


def _expand_by_map(con: Connection, reqs: list[Request]) -> None:
    """The customers of each request's source ids (and its customer ids), then every record
    customer_id_map puts in them."""
    customers = [set(req.of_kind("customer_id")) for req in reqs]
    pairs = [
        (i, f"{s}\x1f{v}")
        for i, req in enumerate(reqs)
        for s, k in MAP_SOURCE_KIND.items()
        for v in req.of_kind(k)
    ]
    with _Temp(con) as tmp:
        if pairs:
            m = tmp.add(pairs)
            for r, c in con.execute(
                f"select distinct p.r, c.customer_id from marts.customer_id_map c join {m} p "
                "on c.source || chr(31) || c.source_record_id = p.v"
            ).fetchall():
                customers[r].add(c)
        for req, found in zip(reqs, customers, strict=True):
            for c in found:
                req.ids.add(("customer_id", c))
                req.anchors.add(("customer_id", c))
        held = [(i, c) for i, found in enumerate(customers) for c in found]
        if not held:
            return
        m = tmp.add(held)
        for r, source, rid in con.execute(
            f"select distinct p.r, c.source, c.source_record_id from marts.customer_id_map c "
            f"join {m} p on c.customer_id = p.v"
        ).fetchall():
            if source in MAP_SOURCE_KIND and rid is not None:
                reqs[r].ids.add((MAP_SOURCE_KIND[source], str(rid)))
                reqs[r].anchors.add((MAP_SOURCE_KIND[source], str(rid)))


def _erase_contract_tables(con: Connection, reqs: list[Request], index: ColumnIndex) -> None:
    """Rows of the person in raw, quarantine and the staging batch tables of every contract: per
    table one join counting each request's rows, then one delete (a row two requests reach
    counts for both)."""
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
            person = cid in PERSON_CONTRACTS
            with _Temp(con) as tmp:
                joins = _column_joins(tmp, table, usable, reqs, index, anchors=person)
                if not joins:
                    continue
                _delete_hits(con, table, _hits_sql(con, table, joins), reqs, first_only=False,
                             place=f"{schema}.{name}", what="the person's rows")  # fmt: skip


def _delete_hits(
    con, table: str, hits: str, reqs: list[Request], first_only: bool, place: str, what: str
) -> None:
    """Delete the rows `hits` (rid, r) names; each request's rows counted once (first_only: a
    row only for the first request reaching it, as deleting request by request would)."""
    rows = (
        f"select rid, min(r) as r from ({hits}) as h group by rid"
        if first_only
        else f"select distinct rid, r from ({hits}) as h"
    )
    create_temp_table(con, "_c360_erasure_hits", rows)
    try:
        counts = dict(
            con.execute("select r, count(*) from _c360_erasure_hits group by r").fetchall()
        )
        if counts:
            found = con.execute("select count(distinct rid) from _c360_erasure_hits").fetchall()[0][
                0
            ]
            gone = changed_rows(
                con,
                f"delete from {table} where {row_locator(con)} in (select rid from _c360_erasure_hits)",
            )
            if gone != found:  # a row changed by another session since it was found
                raise RuntimeError(
                    f"erasure: {place}: {found} row(s) found, {gone} deleted (the table changed "
                    "during the erasure); nothing is kept, rerun the step"
                )
        for i, req in enumerate(reqs):
            if counts.get(i):
                req.touched(place, what, "deleted", rows=counts[i])
    finally:
        con.execute(f"drop table if exists {temp_name(con, '_c360_erasure_hits')}")


def _erase_phone_lookup(con: Connection, reqs: list[Request]) -> None:
    if not _exists(con, "reference", "phone_numbers"):
        return
    pairs = [(i, p) for i, req in enumerate(reqs) for p in sorted(req.of_kind("phone"))]
    if not pairs:
        return
    raw_tables = {
        t for (t,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw'"
        ).fetchall()
    }  # fmt: skip
    # a text another person's row still holds (a household's phone) keeps its row: staging
    # reads its E.164 from here, and without it that person's phone would vanish until the
    # next night parses the text again. The request's own row names the number; it holds
    # nobody's.
    held = phones.inputs_sql(raw_tables, skip=frozenset({"consent__erasure_requests"}))
    with _Temp(con) as tmp:
        m = tmp.add(pairs)
        hits = _hits_sql(con, "reference.phone_numbers", [("t.e164", m)])
        if held:
            hits = (
                f"select h.rid, h.r from ({hits}) as h "
                f"inner join reference.phone_numbers as t on t.{row_locator(con)} = h.rid "
                f"where not exists (select 1 from ({held}) as k "
                "where k.raw_text = t.raw_text and k.region = t.region)"
            )
        _delete_hits(con, "reference.phone_numbers", hits, reqs, first_only=True,
                     place="reference.phone_numbers", what="raw phone texts")  # fmt: skip


def _needles(req: Request) -> list[str]:
    """What the sweep compares every text cell with (trimmed, lower case)."""
    return sorted({v.lower() for k, v in req.ids if k in ("email", "phone", "customer_id")})


def _needle_pairs(reqs: list[Request]) -> list[tuple[int, object]]:
    return [(i, n) for i, req in enumerate(reqs) for n in _needles(req)]


# Source-id kinds and the column names that hold them outside raw (the contracts' names, and the
# kind's own name, which staging and intermediate models use). A source id is matched in these
# columns only: an id like `12345` in any text column could be someone else's order or code.
SOURCE_ID_KINDS = tuple(k for k in MAP_SOURCE_KIND.values())
SOURCE_ID_COLUMNS: dict[str, set[str]] = {k: {k} for k in SOURCE_ID_KINDS}
for _cols in IDENTIFIER_COLUMNS.values():
    for _c in _cols:
        if _c.kind in SOURCE_ID_COLUMNS:
            SOURCE_ID_COLUMNS[_c.kind].add(_c.column)


def _source_id_joins(tmp: _Temp, reqs: list[Request], columns: list[str]) -> list[tuple[str, str]]:
    """(column expression, registered pairs) for the columns named like a source id, each joined
    with every request's anchors of that kind."""
    joins = []
    for kind, names in SOURCE_ID_COLUMNS.items():
        hit = [c for c in columns if c.lower() in names]
        pairs = [(i, v) for i, req in enumerate(reqs) for k, v in req.anchors if k == kind]
        if hit and pairs:
            m = tmp.add(pairs)
            joins += [(f"trim(t.{quote_ident(c)})", m) for c in hit]
    return joins


def _sweep_tables(con: Connection) -> list[tuple[str, str, list[str]]]:
    """(schema, table, text columns in order) of every base table of the warehouse, in byte
    order of schema and table (as DuckDB orders them). On Postgres the database's own catalog
    schemas (pg_catalog, information_schema, pg_toast, the pg_temp_N of sessions) are not the
    warehouse's; DuckDB lists its catalog and temp tables under other catalogs."""
    types = ", ".join(f"'{t}'" for t in _TEXT_TYPES)
    rows = con.execute(
        "select cast(c.table_schema as varchar), cast(c.table_name as varchar), "
        "list(cast(c.column_name as varchar) order by c.ordinal_position) "
        "from information_schema.columns c join information_schema.tables t "
        "on c.table_schema = t.table_schema and c.table_name = t.table_name "
        "and c.table_catalog = t.table_catalog "
        f"where t.table_type = 'BASE TABLE' and c.data_type in ({types}) "
        "and t.table_catalog = current_database() "
        "and t.table_schema <> 'information_schema' and left(t.table_schema, 3) <> 'pg_' "
        "group by c.table_schema, c.table_name"
    ).fetchall()
    return sorted(
        ((s, n, list(cols)) for s, n, cols in rows), key=lambda r: (r[0].encode(), r[1].encode())
    )


def _sweep(con: Connection, reqs: list[Request]) -> None:
    """Every other base table: rows holding the person's email, phone or customer id deleted
    (pseudonymised in activation), or one of their source ids (anchors) in a column named for
    that id (SOURCE_ID_COLUMNS). Per table one join of each text column with every request's
    needles; a row counts for the first request reaching it, as erasing request by request
    would (the rows are gone, or the values pseudonymised, for the later ones)."""
    tables = _sweep_tables(con)
    pairs = _needle_pairs(reqs)
    if not pairs:
        return
    with _Temp(con) as tmp:
        needles = tmp.add(pairs)
        for schema, name, columns in tables:
            if schema in _SWEEP_SKIP_SCHEMAS or (schema, name) in _SWEEP_SKIP_TABLES:
                continue
            if (schema, name) in _PROTECTED or (schema == "staging" and name.startswith("batch__")):
                continue
            table = f"{quote_ident(schema)}.{quote_ident(name)}"
            place = f"{schema}.{name}"
            if schema in _PSEUDONYMISE_SCHEMAS:
                _pseudonymise(con, table, columns, needles, reqs, place, "the person's values")
            else:
                joins = [(f"lower(trim(t.{quote_ident(c)}))", needles) for c in columns]
                # tables keyed by a source id only (an incremental model's shop_customer_id)
                joins += _source_id_joins(tmp, reqs, columns)
                _delete_hits(con, table, _hits_sql(con, table, joins), reqs, first_only=True,
                             place=place, what="rows holding the person")  # fmt: skip


def _pseudonymise(
    con: Connection,
    table: str,
    columns: list[str],
    needles: str,
    reqs: list[Request],
    place: str,
    what: str,
) -> None:
    """Replace every value of `columns` equal (trimmed, lower case) to a needle by its keyed
    pseudonym. A value is the first request's holding it as a needle (request by request, a later
    one would find it pseudonymised); a row counts for each request owning one of its values."""
    firsts: dict[str, str] = {}
    for c in columns:
        q = quote_ident(c)
        first = f"_c360_erasure_first_{len(firsts)}"
        create_temp_table(
            con,
            first,
            f"select d.v, min(n.r) as r from "
            f"(select distinct {q} as v from {table} where {q} is not null) d "
            f"join {needles} n on lower(trim(d.v)) = n.v group by d.v",
        )
        firsts[c] = first
    try:
        rid = row_locator(con)
        owners = " union ".join(
            f"select t.{rid} as rid, f.r from {table} t join {f} f on t.{quote_ident(c)} = f.v"
            for c, f in firsts.items()
        )
        counts = dict(con.execute(f"select r, count(*) from ({owners}) as o group by r").fetchall())
        for c, f in firsts.items():
            values = [v for (v,) in con.execute(f"select v from {f}").fetchall()]
            if values:
                _set_pseudonyms(con, table, c, values)
        for i, req in enumerate(reqs):
            if counts.get(i):
                req.touched(place, what, "pseudonymised", rows=counts[i])
    finally:
        for f in firsts.values():
            con.execute(f"drop table if exists {temp_name(con, f)}")


def _set_pseudonyms(con: Connection, table: str, column: str, values: list) -> None:
    c = quote_ident(column)
    mapping = pa.table(
        {"v": values, "p": [pseudonym(column, str(v).strip().lower()) for v in values]}
    )
    con.register("_c360_pseudonyms", mapping)
    try:
        con.execute(f"update {table} set {c} = m.p from _c360_pseudonyms m where {table}.{c} = m.v")
    finally:
        con.unregister("_c360_pseudonyms")


def _contact_history(con: Connection, reqs: list[Request]) -> None:
    """Pseudonymise contact_history: the person's customer_id and contact_point become keyed
    pseudonyms, every row stays (what was sent, to how many, with which outcome)."""
    if not _exists(con, "activation", "contact_history"):
        return
    pairs = _needle_pairs(reqs)
    if not pairs:
        return
    with _Temp(con) as tmp:
        _pseudonymise(con, "activation.contact_history", ["customer_id", "contact_point"],
                      tmp.add(pairs), reqs, "activation.contact_history",
                      "customer_id, contact_point")  # fmt: skip


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


def _drop_uris(con: Connection) -> list[str]:
    """Every S3 file drop c360 wrote (activation.sync_runs.output_uri)."""
    if not _exists(con, "activation", "sync_runs"):
        return []
    return [u for (u,) in con.execute(
        "select distinct output_uri from activation.sync_runs where output_uri like 's3://%'"
    ).fetchall()]  # fmt: skip


def _rewrite_objects(con: Connection, reqs: list[Request], landing: Path) -> None:
    """S3 landing objects already downloaded and S3 file drops holding the person (s3_objects.py);
    before the local files, so the landing manifest and the rewritten local copy agree."""
    from orchestration.contracts.model import all_source_contracts
    from orchestration.ingest.s3_landing import landing_url

    by_id = {r.request_id: r for r in reqs}
    done: list[s3_objects.ObjectRewrite] = []
    url = landing_url()
    if url:
        folders = [
            (c.source, c.entity, _file_needles(reqs, c.id in PERSON_CONTRACTS))
            for c in all_source_contracts()
            if c.id in IDENTIFIER_COLUMNS
        ]
        done += s3_objects.erase_landing_objects(landing, url, folders)
    uris = _drop_uris(con)
    if uris:
        done += s3_objects.erase_drop_objects(uris, _file_needles(reqs, anchors_only=False))
    for rw in done:
        action = "deleted (no row left)" if rw.removed else "rewritten without the rows"
        if rw.versions_deleted:
            action += f"; {rw.versions_deleted} older version(s) deleted"
        for rid, n in rw.rows_by_request.items():
            by_id[rid].touched(rw.uri, rw.kind, action, rows=n, files_n=1)


def _rewrite_files(
    con: Connection, reqs: list[Request], landing: Path, outbox: Path
) -> list[files.Rewrite]:
    """Rewrite the landing files and outbox drops holding the requests' people; returns the
    landing files rewritten whose new hash the ledger now records."""
    by_id = {r.request_id: r for r in reqs}
    recorded: list[files.Rewrite] = []
    ledger = _exists(con, "audit", "ingestion_files")
    roots = _file_roots(landing, outbox)
    # every folder's files at once: a large landing folder is shared among worker processes
    rewritten = files.rewrite_trees(
        [(folder, _file_needles(reqs, anchors_only)) for folder, _, _, anchors_only in roots]
    )
    for (_, root, what, _), done in zip(roots, rewritten, strict=True):
        for rw in done:
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
                recorded.append(rw)
    return recorded


def _remember_signatures(con: Connection, rewritten: list[files.Rewrite]) -> None:
    """The stat signatures of the landing files the step rewrote, next to the hash the ledger now
    holds, so the next night's ingestion knows them without reading them again (as it knows a
    file it read itself: wap.remember_signatures). A file still within the racy window of its
    write, or changed since, gets none and is hashed next time. After the step's commit: lost
    with a killed run, which costs one read."""
    if not rewritten or not _exists(con, "audit", "landing_file_signatures"):
        return
    paths = ", ".join(quote_literal(str(rw.path)) for rw in rewritten)
    contract_of = dict(
        con.execute(
            f"select path, contract_id from audit.ingestion_files where path in ({paths})"
        ).fetchall()
    )
    con.execute(f"delete from audit.landing_file_signatures where path in ({paths})")
    rows = []
    for rw in rewritten:
        signature = None if rw.removed else settled_signature(rw.path, rw.signature)
        if signature is not None and str(rw.path) in contract_of:
            rows.append([contract_of[str(rw.path)], str(rw.path), rw.sha256,
                         json.dumps(list(signature))])  # fmt: skip
    if rows:
        con.executemany("insert into audit.landing_file_signatures values (?, ?, ?, ?)", rows)


def _destinations(con: Connection, reqs: list[Request], log: Callable[[str], None]) -> None:
    # by anchors: a sync_state row is the person's by its customer_id, or by an identifier
    # only they hold (a household phone may be a sync's key for someone else)
    held = holders(con, [
        (req.of_kind("customer_id"),
         {v for k, v in req.anchors if k in ("email", "phone", "customer_id")})
        for req in reqs
    ])  # fmt: skip
    # a row a request's delete was acknowledged for is gone from sync_state (deliver), so a
    # later request of the night holding it too does not send it again
    gone: set[tuple[str, str]] = set()
    for req, rows in zip(reqs, held, strict=True):
        rows = [r for r in rows if (r[0], r[1]) not in gone]
        acks = deliver(con, req.request_id, rows, log)
        hashed = {(s, keyed_hash("identifier", i)): (s, i) for s, i, _ in rows}
        gone |= {hashed[(a.sync, a.identifier_hash)] for a in acks
                 if a.status == "ok" and (a.sync, a.identifier_hash) in hashed}  # fmt: skip
        req.acks = [a.as_dict() for a in acks]
        for a in acks:
            req.touched(f"destination:{a.sync}", a.destination, f"{a.how}: {a.status}")


def _receipt(con: Connection, req: Request, as_of: dt.date, run_id: str | None) -> None:
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
    con: Connection,
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
        index = ColumnIndex(con)
        expand_all(con, reqs, index)
        log(f"erasure: {len(reqs)} request(s), {sum(len(r.ids) for r in reqs)} identifiers")
        # destinations first: they are found through sync_state, which the sweep must not empty
        _destinations(con, reqs, log)
        _erase_contract_tables(con, reqs, index)
        index.close()
        _erase_phone_lookup(con, reqs)
        _contact_history(con, reqs)
        _sweep(con, reqs)
        _rewrite_objects(con, reqs, landing or landing_dir())
        rewritten = _rewrite_files(con, reqs, landing or landing_dir(), outbox or outbox_dir())
        new = tombstones.add_many(
            con, [(req.request_id, req.anchors, req.ids - req.anchors) for req in reqs]
        )
        for req in reqs:
            _receipt(con, req, as_of, run_id)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    if dialect_of(con) == "duckdb":
        con.execute("checkpoint")  # DuckDB's; Postgres checkpoints on its own
    _remember_signatures(con, rewritten)
    pending = sum(1 for r in reqs if any(a["status"] != "ok" for a in r.acks))
    return ErasureSummary(len(reqs), sum(r.rows for r in reqs), sum(r.files for r in reqs),
                          new, pending)  # fmt: skip
