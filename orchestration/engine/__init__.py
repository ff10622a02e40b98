"""The warehouse interface of the Python side (docs/scale.md, section 5).

The Python steps write DuckDB's SQL against a connection. `Connection` is the part of DuckDB's
connection they use: `execute` with `?` parameters (returning something to fetch from),
`fetchone` / `fetchall` / `to_arrow_table`, and `register` / `unregister` to hand Arrow rows
to SQL as a named relation. A DuckDB connection is one as it is (the embedded default, nothing
in between); `engine.postgres.PostgresConnection` is one on Postgres, running each statement
after translating it (`engine.transpile`). A step typed with `Connection` runs on either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pyarrow as pa


class Connection(Protocol):
    """What a Python step may ask of the warehouse (DuckDB's names; grain: one open session)."""

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        """Run statements (DuckDB dialect; `?` placeholders with a list, `$name` with a dict);
        fetch from what it returns."""
        ...

    def register(self, view_name: str, python_object: pa.Table) -> Any:
        """Make an Arrow table readable by SQL as `view_name` until `unregister`."""
        ...

    def unregister(self, view_name: str) -> Any:
        """Forget a relation `register` made."""
        ...


def dialect_of(con: Connection) -> str:
    """The SQL dialect `con` runs natively: "duckdb" for a DuckDB connection."""
    return str(getattr(con, "dialect", "duckdb"))


def replace_table(
    con: Connection, table: str, select_sql: str, parameters: Sequence[Any] | None = None
) -> None:
    """Replace `table` ("schema.name") with the rows of `select_sql` (DuckDB's dialect); readers
    see the old table or the new one, never none. Runs in the caller's transaction if one is
    open."""
    if dialect_of(con) == "duckdb":
        con.execute(f"create or replace table {table} as {select_sql}", parameters)
        return
    con.replace_table(table, select_sql, parameters)  # type: ignore[attr-defined]


def replace_view(con: Connection, view: str, select_sql: str) -> None:
    """(Re)create `view` ("schema.name") as `select_sql`, whatever columns it had before."""
    if dialect_of(con) == "duckdb":
        con.execute(f"create or replace view {view} as {select_sql}")
        return
    con.replace_view(view, select_sql)  # type: ignore[attr-defined]


def recreate_table(con: Connection, table: str, columns: str) -> None:
    """Replace `table` ("schema.name") with an empty table of `columns` (SQL column list)."""
    if dialect_of(con) == "duckdb":
        con.execute(f"create or replace table {table} ({columns})")
        return
    con.execute(f"drop table if exists {table}")
    con.execute(f"create table {table} ({columns})")


def create_temp_table(
    con: Connection, name: str, select_sql: str, parameters: Sequence[Any] | None = None
) -> None:
    """(Re)create the session's temp table `name` with the rows of `select_sql`."""
    if dialect_of(con) == "duckdb":
        con.execute(f"create or replace temp table {name} as {select_sql}", parameters)
        return
    con.execute(f"drop table if exists {temp_name(con, name)}")
    con.execute(f"create temp table {name} as {select_sql}", parameters)


def temp_name(con: Connection, name: str) -> str:
    """`name` qualified by the session's temp schema (DuckDB: temp, Postgres: pg_temp): a drop
    that never reaches a warehouse table of the same name."""
    return f"{'temp' if dialect_of(con) == 'duckdb' else 'pg_temp'}.{name}"


def row_locator(con: Connection) -> str:
    """The pseudo-column naming a row's place in its table (DuckDB: rowid, Postgres: ctid,
    Spark: the `_metadata` struct of a Parquet table's rows, file and row index): one row while
    the table is unchanged, and insertion order in an append-only table (not on Spark)."""
    return {"duckdb": "rowid", "spark": "_metadata"}.get(dialect_of(con), "ctid")


def changed_rows(con: Connection, sql: str, parameters: Sequence[Any] | None = None) -> int:
    """Run an insert, update or delete and return how many rows it wrote (DuckDB returns the
    count as the statement's result; other engines report it on the cursor)."""
    if dialect_of(con) == "duckdb":
        return int(con.execute(sql, parameters).fetchone()[0])
    con.execute(sql, parameters)
    return int(con.rowcount)  # type: ignore[attr-defined]


def store_table(con: Connection, table: str, rows: pa.Table) -> None:
    """Replace `table` ("schema.name") with `rows` (columns typed from the Arrow schema): how a
    step that computes in a scratch DuckDB, or in Python, writes to any warehouse."""
    con.register("_c360_stored_rows", rows)
    try:
        replace_table(con, table, "select * from _c360_stored_rows")
    finally:
        con.unregister("_c360_stored_rows")


def utc_of_local_sql(local: str, zone: str, dialect: str) -> str:
    """SQL (DuckDB's dialect) of the UTC wall clock at which wall clock `local` (a zoneless
    timestamp) falls in time zone `zone` (an IANA name). DuckDB and Postgres nest timezone();
    Spark names it to_utc_timestamp."""
    if dialect == "spark":
        return f"cast(to_utc_timestamp({local}, {zone}) as timestamp)"
    return f"timezone('UTC', timezone({zone}, {local}))"


def table_exists(con: Connection, schema: str, table: str, views: bool = True) -> bool:
    """Whether `schema.table` exists (a view counts unless `views` is False)."""
    if dialect_of(con) == "spark":
        # the catalog's commands, not information_schema (a relation built per statement)
        return con.table_exists(schema, table, views)  # type: ignore[attr-defined]
    kinds = "" if views else " and table_type = 'BASE TABLE'"
    # fetchall: a DuckDB connection refuses other work while a result is left unfetched
    rows = con.execute(
        "select count(*) from information_schema.tables "
        f"where table_schema = ? and table_name = ?{kinds}",
        [schema, table],
    ).fetchall()
    return bool(rows[0][0])


def table_names(con: Connection, schema: str) -> set[str]:
    """The tables (not views) of `schema`."""
    if dialect_of(con) == "spark":
        return set(con.table_names(schema))  # type: ignore[attr-defined]
    rows = con.execute(
        "select table_name from information_schema.tables "
        "where table_schema = ? and table_type = 'BASE TABLE'",
        [schema],
    ).fetchall()
    return {r[0] for r in rows}
