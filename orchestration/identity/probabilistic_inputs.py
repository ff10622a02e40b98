"""Whether identity.probabilistic_links already holds this night's answer.

Scoring reads the candidate records, the model, the threshold, the probabilistic configuration
and its own SQL; given the same of each it writes the same pairs. A night with nothing new for
identity (no new or changed CRM, shop or loyalty record, no erasure) therefore re-uses the last
night's pairs instead of scoring every blocked pair again. The fingerprint of those inputs, and
one of the table it produced, are kept in `identity.probabilistic_inputs` (one row); a
fingerprint that differs in anything, or a links table changed since, means score again.
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


def reusable(con: Connection, key: str, links_table: str) -> dict[str, int] | None:
    """The counts stored with `key` when the links table is still the one scored for it."""
    # first night: no state or no links table yet
    if not all(table_exists(con, *t.split(".")) for t in (STATE, links_table)):
        return None
    row = con.execute(
        f"select links_digest, counts from {STATE} where inputs_fingerprint = ?", [key]
    ).fetchall()
    row = row[0] if row else None
    if row is None or _table_digest(con, _pairs(con, links_table)) != row[0]:
        return None
    return {k: int(v) for k, v in json.loads(row[1]).items()}


def remember(con: Connection, key: str | None, links_table: str, counts: Mapping[str, int]) -> None:
    """Keep `key` (None: nothing to re-use next night) with the links table it produced."""
    con.execute("create schema if not exists identity")
    recreate_table(con, STATE, "inputs_fingerprint varchar, links_digest varchar, counts varchar")
    if key is not None:
        con.execute(
            f"insert into {STATE} values (?, ?, ?)",
            [key, _table_digest(con, _pairs(con, links_table)), json.dumps(dict(counts))],
        )
