"""Digests of warehouse tables for comparing two warehouses (a rerun, a killed run, a soak):
one `<sha256>:<rows>` per table, the same whatever order the rows were written in. Grain: one
digest per table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

import duckdb


def table_digest(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, skip: Collection[str] = ()
) -> str:
    """`<sha256>:<rows>` of the table's rows without the `skip` columns (those that say which
    run wrote a row rather than what it holds)."""
    columns = [
        row[0]
        for row in con.execute(f'describe "{schema}"."{table}"').fetchall()
        if row[0] not in skip
    ]
    select = ", ".join(f'cast("{column}" as varchar)' for column in columns)
    rows = con.execute(f'select {select} from "{schema}"."{table}" order by all').fetchall()
    return f"{hashlib.sha256(repr(rows).encode()).hexdigest()}:{len(rows)}"
