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

import duckdb
import pyarrow as pa

STATE = "identity.probabilistic_inputs"


def _table_digest(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """Row count and the sum of every row's hash: equal for equal row sets, in any order."""
    rows, total = con.execute(
        f"select count(*), coalesce(sum(hash(t)::hugeint), 0) from {relation} as t"
    ).fetchall()[0]
    return f"{rows}:{total}"


def _pairs(links_table: str) -> str:
    # the night's date is restamped on re-use; the pairs are what must not have changed
    return f"(select * exclude (as_of) from {links_table})"


def fingerprint(con: duckdb.DuckDBPyConnection, records: pa.Table, parts: Mapping[str, Any]) -> str:
    """sha256 of the candidate records' digest and `parts` (model, threshold, config, code)."""
    con.register("_probabilistic_candidates", records)
    try:
        digest = _table_digest(con, "_probabilistic_candidates")
    finally:
        con.unregister("_probabilistic_candidates")
    payload = json.dumps({"records": digest, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def reusable(con: duckdb.DuckDBPyConnection, key: str, links_table: str) -> dict[str, int] | None:
    """The counts stored with `key` when the links table is still the one scored for it."""
    try:
        row = con.execute(
            f"select links_digest, counts from {STATE} where inputs_fingerprint = ?", [key]
        ).fetchall()
        row = row[0] if row else None
        if row is None or _table_digest(con, _pairs(links_table)) != row[0]:
            return None
    except duckdb.CatalogException:  # first night: no state or no links table yet
        return None
    return {k: int(v) for k, v in json.loads(row[1]).items()}


def remember(
    con: duckdb.DuckDBPyConnection, key: str | None, links_table: str, counts: Mapping[str, int]
) -> None:
    """Keep `key` (None: nothing to re-use next night) with the links table it produced."""
    con.execute("create schema if not exists identity")
    con.execute(
        f"create or replace table {STATE} "
        "(inputs_fingerprint varchar, links_digest varchar, counts varchar)"
    )
    if key is not None:
        con.execute(
            f"insert into {STATE} values (?, ?, ?)",
            [key, _table_digest(con, _pairs(links_table)), json.dumps(dict(counts))],
        )
