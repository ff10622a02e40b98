"""Whether identity.probabilistic_links already holds this night's answer.

Scoring reads the candidate records, the model, the threshold, the probabilistic configuration
and its own SQL; given the same of each it writes the same pairs. A night with nothing new for
identity (no new or changed CRM, shop or loyalty record, no erasure) therefore re-uses the last
night's pairs instead of scoring every blocked pair again. The fingerprint of those inputs, and
one of the table it produced, are kept in `identity.probabilistic_inputs` (one row); a
fingerprint that differs in anything, or a links table changed since, means score again.

Computing the candidate records folds every name and address (seconds at a million records), so
on DuckDB a cheaper fingerprint is tried first: the digests of exactly the columns the candidates
are computed from (`SOURCES`), with the same `parts`. Equal columns and code give equal candidates
(CANDIDATES_SQL is a function of them), so a match re-uses the pairs without computing the
candidates; otherwise the candidates are computed and fingerprinted as above (a night whose
records changed only in columns scoring never reads still re-uses).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from orchestration.engine import Connection, dialect_of, recreate_table, table_exists
from orchestration.warehouse import scratch

STATE = "identity.probabilistic_inputs"
# What probabilistic.CANDIDATES_SQL reads (its relations, their rows and columns): the test
# test_the_sources_are_every_row_and_column_the_candidates_read keeps the two in step.
SOURCES = {
    "intermediate.int_identity__records": (
        "source <> 'web'",
        ("record_key", "first_name", "last_name", "email_normalized", "phone_e164",
         "date_of_birth", "postal_code", "address_line1", "city"),
    ),
    "intermediate.int_identity__dropped_links": (
        "drop_reason <> 'first_name_conflict'", ("record_key", "node_key"),
    ),
    "intermediate.int_identity__candidate_links": (
        "identifier_type = 'name_address'", ("record_key", "identifier_value"),
    ),
}  # fmt: skip


def _table_digest(con: Connection, relation: str) -> str:
    """Row count and the sum of every row's hash: equal for equal row sets, in any order.
    DuckDB's hash; another engine's rows are hashed in a scratch DuckDB."""
    if dialect_of(con) != "duckdb":
        local = scratch()
        try:
            rows = con.execute(f"select * from {relation} as t").to_arrow_table()
            local.register("_digested", rows)
            return _table_digest(local, "_digested")
        finally:
            local.close()
    rows, total = con.execute(
        f"select count(*), coalesce(sum(hash(t)::hugeint), 0) from {relation} as t"
    ).fetchall()[0]
    return f"{rows}:{total}"


def _records_digest(records: pa.Table) -> str:
    local = scratch()
    try:
        local.register("_probabilistic_candidates", records)
        return _table_digest(local, "_probabilistic_candidates")
    finally:
        local.close()


def _pairs(con: Connection, links_table: str) -> str:
    # the night's date is restamped on re-use; the pairs are what must not have changed
    if dialect_of(con) == "duckdb":
        return f"(select * exclude (as_of) from {links_table})"
    return (
        f"(select record_key, node_key, identifier_type, identifier_value, rule, "
        f"match_probability, match_weight, comparison_levels from {links_table})"
    )


def fingerprint(con: Connection, records: pa.Table, parts: Mapping[str, Any]) -> str:
    """sha256 of the candidate records' digest and `parts` (model, threshold, config, code)."""
    if dialect_of(con) == "duckdb":
        con.register("_probabilistic_candidates", records)
        try:
            digest = _table_digest(con, "_probabilistic_candidates")
        finally:
            con.unregister("_probabilistic_candidates")
    else:
        digest = _records_digest(records)
    payload = json.dumps({"records": digest, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def sources_fingerprint(con: Connection, parts: Mapping[str, Any]) -> str | None:
    """sha256 of the digests of SOURCES' columns and `parts`; None off DuckDB (another engine's
    rows would be copied whole to be hashed) or before identity was built."""
    if dialect_of(con) != "duckdb":
        return None
    digests = {}
    for relation, (where, columns) in SOURCES.items():
        if not table_exists(con, *relation.split(".")):
            return None
        digests[relation] = _table_digest(
            con, f"(select {', '.join(columns)} from {relation} where {where})"
        )
    payload = json.dumps({"source_digests": digests, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def reusable(
    con: Connection, links_table: str, key: str | None = None, sources: str | None = None
) -> dict[str, int] | None:
    """The counts stored with the candidates' fingerprint `key`, or with the `sources`
    fingerprint (DuckDB), when the links table is still the one scored for it."""
    # first night: no state or no links table yet
    if (key is None and sources is None) or not all(
        table_exists(con, *t.split(".")) for t in (STATE, links_table)
    ):
        return None
    if key is not None:
        rows = con.execute(
            f"select links_digest, counts from {STATE} where inputs_fingerprint = ?", [key]
        ).fetchall()
    elif _has_sources_column(con):
        rows = con.execute(
            f"select links_digest, counts from {STATE} where sources_fingerprint = ?", [sources]
        ).fetchall()
    else:  # the state a version without the sources check left
        rows = []
    row = rows[0] if rows else None
    if row is None or _table_digest(con, _pairs(con, links_table)) != row[0]:
        return None
    return {k: int(v) for k, v in json.loads(row[1]).items()}


def _has_sources_column(con: Connection) -> bool:
    schema, table = STATE.split(".")
    return bool(
        con.execute(
            "select count(*) from duckdb_columns() where schema_name = ? and table_name = ? "
            "and column_name = 'sources_fingerprint'",
            [schema, table],
        ).fetchall()[0][0]
    )


def remember(
    con: Connection,
    key: str | None,
    links_table: str,
    counts: Mapping[str, int],
    sources: str | None = None,
) -> None:
    """Keep `key` and `sources` (None: nothing to re-use next night) with the links table they
    produced and its counts (the candidate records' included)."""
    con.execute("create schema if not exists identity")
    recreate_table(
        con,
        STATE,
        "inputs_fingerprint varchar, links_digest varchar, counts varchar, "
        "sources_fingerprint varchar",
    )
    if key is not None:
        con.execute(
            f"insert into {STATE} values (?, ?, ?, ?)",
            [
                key,
                _table_digest(con, _pairs(con, links_table)),
                json.dumps(dict(counts)),
                sources,
            ],
        )
