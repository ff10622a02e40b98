"""CRM live extraction: one Postgres table per contract entity, read with dlt's `sql_table`.

dlt builds the incremental query (`updated_at >= since and updated_at < until or updated_at is
null`, ordered by updated_at) and streams it in chunks. Both ends of the range are given on every
run (`initial_value` + `end_value`), so dlt keeps no state of its own: the cursor is what c360
published (live.py). No dlt pipeline runs, so nothing `_dlt_*` is added, and no schema contract
(dlt's discard modes would drop rows silently; the c360 contract gate quarantines them instead).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from orchestration.contracts.model import Contract
from orchestration.extract.config import CrmConfig


def _engine(config: CrmConfig):
    import psycopg2
    import sqlalchemy as sa

    # `creator` takes libpq DSNs and URLs alike and keeps the DSN out of SQLAlchemy's URL repr.
    return sa.create_engine(
        "postgresql+psycopg2://",
        creator=lambda: psycopg2.connect(config.dsn, connect_timeout=10),
        poolclass=sa.pool.NullPool,
    )


def extract_rows(
    config: CrmConfig, contract: Contract, since: dt.datetime, until: dt.datetime
) -> Iterator[dict[str, Any]]:
    """Rows of `<schema>.<entity>` with `since <= cursor < until` or no cursor value (raw values)."""
    import dlt
    from dlt.sources.sql_database import sql_table

    cursor = dlt.sources.incremental(
        contract.ordering_column,
        initial_value=since,
        end_value=until,
        range_start="closed",  # rows whose updated_at equals the cursor are read again
        range_end="open",
        row_order="asc",
        on_cursor_value_missing="include",  # rows without updated_at reach the contract gate
    )
    engine = _engine(config)
    try:
        resource = sql_table(
            credentials=engine,
            table=contract.entity,
            schema=config.schema,
            incremental=cursor,
            chunk_size=config.chunk_size,
            backend="sqlalchemy",
            reflection_level="minimal",
        )
        yield from resource
    finally:
        engine.dispose()
