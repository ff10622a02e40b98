"""The engine helpers on a DuckDB connection, the embedded default: the same tables and views
the Postgres implementation builds (tests/e2e/test_engine_postgres.py runs them there)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from orchestration.engine import (
    dialect_of,
    recreate_table,
    replace_table,
    replace_view,
    store_table,
)


@pytest.fixture
def con():
    with duckdb.connect() as c:
        c.execute("create schema s")
        yield c


def test_a_duckdb_connection_is_a_warehouse_connection_as_it_is(con):
    assert dialect_of(con) == "duckdb"


def test_replace_table_replaces_rows_and_columns(con):
    replace_table(con, "s.t", "select 1 as a, 'x' as b")
    replace_table(con, "s.t", "select ? as c", [7])
    assert con.execute("select * from s.t").fetchall() == [(7,)]
    assert [d[0] for d in con.execute("select * from s.t").description] == ["c"]


def test_replace_view_takes_a_changed_column_list(con):
    replace_view(con, "s.v", "select 1 as a")
    replace_view(con, "s.v", "select 2 as b, 3 as c")
    assert con.execute("select b, c from s.v").fetchall() == [(2, 3)]


def test_recreate_table_empties_it_with_the_new_columns(con):
    replace_table(con, "s.t", "select 1 as a")
    recreate_table(con, "s.t", "k varchar, n bigint")
    assert con.execute("select count(*) from s.t").fetchone() == (0,)
    con.execute("insert into s.t values ('a', 1)")


def test_store_table_writes_arrow_rows_and_forgets_the_relation(con):
    rows = pa.table({"k": pa.array(["a", "", None]), "n": pa.array([1, None, 3], pa.int64())})
    store_table(con, "s.t", rows)
    assert sorted(con.execute("select * from s.t").fetchall(), key=repr) == sorted(
        [("a", 1), ("", None), (None, 3)], key=repr
    )
    with pytest.raises(duckdb.CatalogException):
        con.execute("select * from _c360_stored_rows")
