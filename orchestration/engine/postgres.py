"""A warehouse `Connection` on Postgres (grain: one psycopg2 session).

Each `execute` translates DuckDB's SQL (`engine.transpile`) and runs it; `register` copies an
Arrow table into a temporary table of that name (Postgres has no view over client memory), so a
step's `insert … select … from <registered>` reads the same rows on both engines. The session
runs in autocommit, as a DuckDB connection does: a step's own `begin` / `commit` / `rollback`
statements open and close its transactions.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pandas as pd
import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pyarrow.csv as pa_csv

from orchestration.contracts.rules_sql import quote_ident
from orchestration.engine.dbapi import DbApiConnection
from orchestration.engine.transpile import translate

DIALECT = "postgres"


def _pg_type(dtype: pa.DataType) -> str:
    """The Postgres column type that holds an Arrow type's values unchanged."""
    if pa.types.is_dictionary(dtype):
        return _pg_type(dtype.value_type)
    if (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_null(dtype)  # a column with no value (a frame of no rows): text, as null
    ):
        return "text"
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype):
        return "smallint"
    if pa.types.is_int32(dtype):
        return "integer"
    if pa.types.is_integer(dtype):
        return "bigint"
    if pa.types.is_floating(dtype):
        return "double precision"
    if pa.types.is_decimal(dtype):
        return f"numeric({dtype.precision}, {dtype.scale})"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_timestamp(dtype):
        return "timestamptz" if dtype.tz else "timestamp"
    raise TypeError(f"register: no Postgres column type for Arrow type {dtype}")


# Postgres type oids → Arrow (pg_type.oid of the built-in types)
_ARROW_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 25: pa.string(),
    700: pa.float32(), 701: pa.float64(), 1043: pa.string(), 1082: pa.date32(),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), 1009: pa.list_(pa.string()),
    1015: pa.list_(pa.string()),
}  # fmt: skip


class PostgresConnection(DbApiConnection):
    """DuckDB's connection methods the Python steps use, on a Postgres session."""

    dialect = DIALECT

    def __init__(self, con: psycopg2.extensions.connection) -> None:
        con.autocommit = True
        super().__init__(con)
        with con.cursor() as cursor:  # timestamps in UTC, as every DuckDB connection c360 opens
            cursor.execute("set time zone 'UTC'")

    @classmethod
    def connect(cls, dsn: str) -> PostgresConnection:
        """Open a session from a libpq connection string (host=… port=… dbname=… user=…)."""
        return cls(psycopg2.connect(dsn, connect_timeout=10))

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed (or returned)."""
        return self._last().rowcount

    def to_arrow_table(self) -> pa.Table:
        """The last result as an Arrow table, typed by the columns' Postgres types (a column of
        nulls keeps its type); other types are inferred from the values."""
        cursor = self._last()
        columns = list(cursor.description or ())
        rows = cursor.fetchall()
        arrays = {}
        for i, column in enumerate(columns):
            values = [r[i] for r in rows]
            kind = _ARROW_TYPES.get(column.type_code)
            arrays[column.name] = pa.array(values, type=kind) if kind else pa.array(values)
        return pa.table(arrays)

    def executemany(self, sql: str, parameters: Sequence[Sequence[Any]]) -> PostgresConnection:
        """Run one statement once per parameter row."""
        (statement,) = translate(sql, DIALECT)
        cursor = self._con.cursor()
        cursor.executemany(statement, [tuple(p) for p in parameters])
        self._cursor = cursor
        return self

    def df(self) -> pd.DataFrame:
        """The last result as a pandas frame, typed as DuckDB's `df()` types it: dates and
        timestamps as datetime64, decimals as floats."""
        table = self.to_arrow_table()
        for i, field in enumerate(table.schema):
            if pa.types.is_decimal(field.type):
                table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
        return table.to_pandas(date_as_object=False)

    def replace_table(
        self, table: str, select_sql: str, parameters: Sequence[Any] | None = None
    ) -> None:
        """Drop and re-create `table` from `select_sql` in one transaction (the caller's, when
        one is open), so readers never find it missing."""
        self._recreate("table", table, select_sql, parameters)

    def replace_view(self, view: str, select_sql: str) -> None:
        """Drop and re-create `view` in one transaction: Postgres' `create or replace view`
        refuses a changed column list."""
        self._recreate("view", view, select_sql, None)

    def _recreate(
        self, kind: str, name: str, select_sql: str, parameters: Sequence[Any] | None
    ) -> None:
        (select,) = translate(select_sql, DIALECT)
        own = self._con.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        with self._con.cursor() as cursor:
            if own:
                cursor.execute("begin")
            try:
                if kind == "table":
                    self._refill_table(cursor, name, select, tuple(parameters or ()))
                else:
                    cursor.execute(f"drop view if exists {name}")
                    cursor.execute(f"create view {name} as {select}")
            except BaseException:
                if own:
                    cursor.execute("rollback")
                raise
            if own:
                cursor.execute("commit")

    @staticmethod
    def _refill_table(
        cursor: psycopg2.extensions.cursor, name: str, select: str, args: tuple[Any, ...]
    ) -> None:
        """`name` holds the rows of `select` afterwards. A table of the same columns is emptied
        and refilled, so views on it (which Postgres tracks, unlike DuckDB) stay; a table of
        other columns is dropped with its views, as DuckDB's `create or replace` leaves them
        broken."""
        cursor.execute("drop table if exists pg_temp._c360_refill")
        cursor.execute(f"create temporary table _c360_refill as {select}", args)

        def shape(schema_sql: str, params: list[str]) -> list[tuple[str, str]]:
            cursor.execute(
                "select column_name, data_type from information_schema.columns "
                f"where {schema_sql} order by ordinal_position",
                params,
            )
            return cursor.fetchall()

        schema, _, table = name.rpartition(".")
        existing = shape("table_schema = %s and table_name = %s", [schema or "public", table])
        fresh = shape("table_schema = pg_my_temp_schema()::regnamespace::text "
                      "and table_name = '_c360_refill'", [])  # fmt: skip
        if existing and existing == fresh:
            cursor.execute(f"truncate {name}")
            cursor.execute(f"insert into {name} select * from pg_temp._c360_refill")
        else:
            cursor.execute(f"drop table if exists {name} cascade")
            cursor.execute(f"create table {name} as select * from pg_temp._c360_refill")
        cursor.execute("drop table pg_temp._c360_refill")

    def register(
        self, view_name: str, python_object: pa.Table | pd.DataFrame
    ) -> PostgresConnection:
        """A temporary table `view_name` holding the rows of an Arrow table or a pandas frame
        (nulls stay null)."""
        table = (
            pa.Table.from_pandas(python_object, preserve_index=False)
            if isinstance(python_object, pd.DataFrame)
            else python_object
        )
        name = quote_ident(view_name)
        columns = ", ".join(f"{quote_ident(f.name)} {_pg_type(f.type)}" for f in table.schema)
        buffer = io.BytesIO()
        pa_csv.write_csv(table, buffer)  # strings quoted: "" is an empty text, nothing is null
        buffer.seek(0)
        with self._con.cursor() as cursor:
            cursor.execute(f"drop table if exists pg_temp.{name}")
            cursor.execute(f"create temporary table {name} ({columns})")
            cursor.copy_expert(f"copy {name} from stdin with (format csv, header true)", buffer)
        return self

    def unregister(self, view_name: str) -> PostgresConnection:
        if self._con.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR:
            return self  # the failed transaction's rollback drops it; the error is the caller's
        with self._con.cursor() as cursor:
            cursor.execute(f"drop table if exists pg_temp.{quote_ident(view_name)}")
        return self
