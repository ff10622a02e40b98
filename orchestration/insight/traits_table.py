"""Writing a per-customer traits mart (grain: one row per customer of marts.customer_360).

The insight models (CLV, send time, lead score) each score a subset of customers in pandas and
publish a mart with every customer_360 customer, nulls for the unscored; this is that publish.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from orchestration.engine import Connection, replace_table


def replace_traits(
    con: Connection,
    table: str,
    traits: pd.DataFrame,
    columns: str,
    as_of: dt.date,
) -> int:
    """Replace `table` with one row per customer of marts.customer_360, ordered by customer_id:
    customer_id, then `columns` (SQL over `c360`, the customer_360 row, and `traits`, the frame's
    row for that customer_id or nulls), then as_of. Runs in the caller's transaction; returns the
    rows written. Any warehouse `Connection` (DuckDB, Postgres)."""
    view = f"{table.rsplit('.', 1)[-1]}_traits"
    con.register(view, traits)
    try:
        replace_table(
            con,
            table,
            f"""
            select c360.customer_id, {columns}, cast(? as date) as as_of
            from marts.customer_360 as c360
            left join {view} as traits on c360.customer_id = traits.customer_id
            order by c360.customer_id
            """,
            [as_of],
        )
    finally:
        con.unregister(view)
    return int(con.execute(f"select count(*) from {table}").fetchone()[0])
