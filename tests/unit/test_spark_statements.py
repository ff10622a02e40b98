"""What Spark cannot run as DuckDB writes it, rewritten (orchestration/engine/spark_statements.py):
bound parameters, temp tables in the session's schema, deletes and updates as table rewrites.
Each rewrite is run here on DuckDB, against the statement it replaces, on the same rows."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
import sqlglot

from orchestration.engine.spark_statements import (
    TempScope,
    bind,
    delete_rewrite,
    is_transaction_control,
    primary_key,
    session_schema,
    stale_session_schemas,
    update_rewrite,
    upsert_rewrite,
)
from orchestration.engine.transpile import UntranslatableSQL, translate


def _tree(sql: str):
    return sqlglot.parse_one(sql, read="duckdb")


def _table() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema s")
    con.execute("create table s.t (id integer, status varchar, day date, n integer)")
    con.execute(
        "insert into s.t values (1, 'a', date '2026-01-01', 1), (2, 'b', null, 2), "
        "(3, null, date '2026-01-03', null), (4, 'a', date '2026-01-04', 4)"
    )
    return con


def _rows(con, sql="select * from s.t order by id"):
    return con.execute(sql).fetchall()


def test_parameters_are_bound_in_the_order_of_the_text_as_typed_literals():
    tree = bind(
        _tree("select a from t where b = ? and c < ? and d = ? limit ?"),
        ["it's", dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 3, 4, 5), 4],
    )
    (spark,) = translate(tree.sql(dialect="duckdb"), "spark")
    assert "b = 'it\\'s'" in spark
    assert "c < CAST('2026-01-02' AS DATE)" in spark
    assert "d = CAST('2026-01-02 03:04:05' AS TIMESTAMP_NTZ)" in spark
    assert spark.endswith("LIMIT 4")


def test_named_parameters_and_miscounted_ones():
    tree = bind(_tree("select $x + $x"), {"x": 2})
    assert tree.sql(dialect="duckdb") == "SELECT 2 + 2"
    with pytest.raises(UntranslatableSQL, match="2 `\\?` placeholders, 1 values"):
        bind(_tree("select ?, ?"), [1])


def test_temp_tables_live_in_the_session_schema_until_dropped():
    scope = TempScope("c360_session_x", set())
    seen = [
        scope.apply(_tree(sql)).sql(dialect="duckdb")
        for sql in (
            "create temp table _t (a int)",
            "insert into _t select a from raw.t",
            "with _t as (select 1 as a) select a from _t",  # a CTE of the same name is not it
            "drop table _t",
            "select * from _t",  # forgotten after the drop
            "drop table if exists pg_temp._u",
        )
    ]
    assert seen == [
        "CREATE TABLE c360_session_x._t (a INT)",
        "INSERT INTO c360_session_x._t SELECT a FROM raw.t",
        "WITH _t AS (SELECT 1 AS a) SELECT a FROM _t",
        "DROP TABLE c360_session_x._t",
        "SELECT * FROM _t",
        "DROP TABLE IF EXISTS c360_session_x._u",
    ]


@pytest.mark.parametrize(
    "delete",
    [
        "delete from s.t where status = 'a'",
        "delete from s.t as x where x.n > 1",  # null n: kept, as a delete keeps it
        "delete from s.t where exists (select 1 from s.t o where o.id = t.id + 1)",
        "delete from s.t",
    ],
)
def test_a_delete_rewritten_keeps_what_the_delete_keeps(delete):
    expected_con = _table()
    changed = expected_con.execute(delete).fetchone()[0]
    plan = delete_rewrite(_tree(delete))
    con = _table()
    assert con.execute(plan.count_sql).fetchone()[0] == changed
    kept = _rows(con, f"{plan.select_sql} order by id") if plan.select_sql else []
    assert kept == _rows(expected_con)


@pytest.mark.parametrize(
    "update",
    [
        "update s.t set status = 'done' where status = 'a'",
        "update s.t set n = n * 10, day = date '2026-02-01' where n > 1",
        "update s.t set status = upper(status)",
    ],
)
def test_an_update_rewritten_gives_the_rows_the_update_gives(update):
    expected_con = _table()
    changed = expected_con.execute(update).fetchone()[0]
    plan = update_rewrite(_tree(update), ["id", "status", "day", "n"])
    con = _table()
    assert con.execute(plan.count_sql).fetchone()[0] == changed
    assert _rows(con, f"{plan.select_sql} order by id") == _rows(expected_con)


def test_rewrites_refuse_what_they_cannot_keep_the_meaning_of():
    with pytest.raises(UntranslatableSQL, match="unknown columns"):
        update_rewrite(_tree("update s.t set nope = 1"), ["id"])
    with pytest.raises(UntranslatableSQL, match="update … from"):
        update_rewrite(_tree("update s.t set n = o.n from s.o where o.id = t.id"), ["id", "n"])


def test_transaction_control_runs_nothing():
    assert all(
        is_transaction_control(_tree(s)) for s in ("begin transaction", "commit", "rollback")
    )
    assert not is_transaction_control(_tree("select 1"))


def test_spark_types_and_full_matches():
    (ddl,) = translate("create table t (o json, at timestamptz, t timestamp)", "spark")
    assert ddl == "CREATE TABLE t (o STRING, at TIMESTAMP_LTZ, t TIMESTAMP_NTZ)"
    (match,) = translate("select regexp_full_match(a, 'x|y') from t", "spark")
    assert "a RLIKE CONCAT('^(?:', 'x|y', ')\\\\z')" in match


def _keyed() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema s; create table s.k (a integer primary key, b integer, c varchar)")
    con.execute("insert into s.k values (1, 10, 'x'), (2, 20, 'y'), (3, null, 'z')")
    return con


@pytest.mark.parametrize(
    "upsert",
    [
        "insert into s.k values (2, 99, 'new'), (4, 40, 'w') on conflict do nothing",
        "insert into s.k (a, b) values (2, 99), (4, 40) on conflict (a) do update "
        "set b = excluded.b + k.b",
        "insert into s.k select 3, 5, 'q' union all select 5, 50, 'r' on conflict (a) "
        "do update set b = coalesce(b, 0) + excluded.b, c = excluded.c where k.a > 2",
    ],
)
def test_an_upsert_rewritten_gives_the_rows_and_count_the_upsert_gives(upsert):
    expected_con = _keyed()
    changed = expected_con.execute(upsert).fetchone()[0]
    plan = upsert_rewrite(_tree(upsert), ["a", "b", "c"], ["a"])
    con = _keyed()
    if plan.rewrite is None:
        assert con.execute(plan.count_sql).fetchone()[0] == changed
        con.execute(plan.insert_sql)
        got = con.execute("select * from s.k order by a").fetchall()
    else:
        assert con.execute(plan.rewrite.count_sql).fetchone()[0] == changed
        got = con.execute(f"{plan.rewrite.select_sql} order by 1").fetchall()
    assert got == expected_con.execute("select * from s.k order by a").fetchall()


def test_the_primary_key_a_create_declares():
    assert primary_key(_tree("create table t (a int primary key, b int)")) == ["a"]
    assert primary_key(_tree("create table t (a int, b int, primary key (a, b))")) == ["a", "b"]
    assert primary_key(_tree("create table t (a int)")) == []
    with pytest.raises(UntranslatableSQL, match="without a key"):
        upsert_rewrite(_tree("insert into t values (1) on conflict do nothing"), ["a"], [])


def test_a_killed_sessions_scratch_schema_is_stale_a_day_after_it_started():
    now = dt.datetime(2026, 12, 6, 12, 0, 0)
    mine = session_schema(now, "0123abcd")
    assert mine == "c360_session_20261206120000_0123abcd"
    killed = session_schema(now - dt.timedelta(hours=24, seconds=1), "deadbeef")
    recent = session_schema(now - dt.timedelta(hours=23), "cafef00d")
    # Spark lower-cases schema names; a name of another shape is never ours to drop
    schemas = [mine, killed.upper(), recent, "c360_session_3f2a9c1b0d4e", "marts", "c360_session_x"]
    assert stale_session_schemas(schemas, now) == [killed.upper()]
