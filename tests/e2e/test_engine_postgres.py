"""The warehouse `Connection` on a real Postgres (engine.postgres): DuckDB's SQL translated and
run, Arrow rows registered, and a Python step of the nightly (the phone lookup) giving the same
table on Postgres as on DuckDB."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import duckdb
import pyarrow as pa
import pytest

from orchestration.engine.postgres import PostgresConnection
from orchestration.engine.transpile import UntranslatableSQL
from orchestration.identity import phones
from tests.e2e.pg import PgDatabase, PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]


@pytest.fixture
def pg(pg_server: PostgresServer, request) -> PostgresConnection:
    db: PgDatabase = pg_server.create_database(f"engine_{request.node.name[:40].lower()}")
    con = PostgresConnection.connect(db.dsn)
    yield con
    con.close()


def test_duckdb_sql_runs_with_parameters_percent_signs_and_several_statements(pg):
    pg.execute(
        "create schema if not exists s; "
        "create table if not exists s.t (k varchar not null, n bigint, d date, primary key (k))"
    )
    pg.execute("insert into s.t values (?, ?, cast(? as date))", ["a%b", 1, "2026-11-21"])
    pg.execute("insert into s.t values (?, ?, ?)", ["plain", None, None])
    # a literal % in the text, with and without parameters
    like = "select k from s.t where k like '%\\%%' escape '\\'"
    assert pg.execute(like).fetchall() == [("a%b",)]
    assert pg.execute(like + " and k <> ?", ["plain"]).fetchall() == [("a%b",)]
    rows = pg.execute("select k, n, d from s.t where n = ?", [1])
    assert rows.fetchall() == [("a%b", 1, dt.date(2026, 11, 21))]
    # DuckDB's own forms, translated: filter, strftime, list aggregation
    one = pg.execute(
        "select count(*) filter (where n is null), strftime(max(d), '%Y-%m'), list(k order by k) "
        "from s.t"
    ).fetchone()
    assert one == (1, "2026-11", ["a%b", "plain"])
    assert pg.execute("select 1 where false").fetchone() is None


def test_a_duckdb_only_statement_is_refused_before_it_runs(pg):
    pg.execute("create table t (k varchar primary key, v bigint)")
    with pytest.raises(UntranslatableSQL, match="insert or replace"):
        pg.execute("insert or replace into t values ('a', 1)")
    assert pg.execute("select count(*) from t").fetchone() == (0,)


def test_registered_arrow_rows_keep_nulls_empty_strings_and_types(pg):
    table = pa.table(
        {
            "s": pa.array(["x", "", None, 'q"u,o\nte', "Müller"], pa.string()),
            "b": pa.array([True, None, False, True, False]),
            "i": pa.array([1, None, -3, 2**40, 0], pa.int64()),
            "f": pa.array([0.5, None, 1e-9, -2.25, 3.0]),
            "d": pa.array([dt.date(2026, 1, 2), None, dt.date(1900, 12, 31)] + [None] * 2),
            "t": pa.array([dt.datetime(2026, 11, 21, 13, 5, 7, 123456)] + [None] * 4),
        }
    )
    pg.register("_rows", table)
    back = pg.execute("select s, b, i, f, d, t from _rows").fetchall()
    assert back == [tuple(r.values()) for r in table.to_pylist()]
    assert pg.execute("select count(*) from _rows where s = ''").fetchone() == (1,)
    pg.unregister("_rows")
    with pytest.raises(Exception, match="_rows"):
        pg.execute("select * from _rows")


def _raw_phone_tables(execute) -> None:
    """The raw tables' phone columns (from the contracts), with varied texts and regions."""
    columns: dict[str, set[str]] = defaultdict(set)
    for table, col in phones.PHONE_INPUTS:
        columns[table] |= {c for c in (col.column, col.region_column, col.type_column) if c}
    texts = ["+1 415 555 0100", "0044 20 7946 0958", "(415) 555-0101", "abc", "", None, "12"]
    execute("create schema if not exists raw")
    for table, cols in sorted(columns.items()):
        ordered = sorted(cols)
        execute(f"create table raw.{table} ({', '.join(f'{c} varchar' for c in ordered)})")
        for i, text in enumerate(texts):
            values = []
            for c in ordered:
                if c.endswith("type"):
                    values.append("phone" if i % 3 else "email")
                elif any(c == col.region_column for _, col in phones.PHONE_INPUTS):
                    values.append(["gb", None, "US", " de "][i % 4])
                else:
                    values.append(text)
            marks = ", ".join("?" for _ in ordered)
            execute(f"insert into raw.{table} values ({marks})", values)


def test_the_phone_lookup_is_the_same_table_on_postgres_and_duckdb(pg):
    duck = duckdb.connect()
    _raw_phone_tables(duck.execute)
    _raw_phone_tables(pg.execute)
    counts = {
        name: phones.refresh(con, "2026-11-21", fallback_region="US")
        for name, con in (("duckdb", duck), ("postgres", pg))
    }
    assert counts["postgres"] == counts["duckdb"]
    assert counts["duckdb"]["new_texts"] > 5 and counts["duckdb"]["total_e164"] > 2
    query = "select raw_text, region, e164, is_valid, reason, first_seen_as_of from " + phones.TABLE
    assert sorted(pg.execute(query).fetchall()) == sorted(duck.execute(query).fetchall())
    # a second night parses nothing again, on either engine
    for con in (duck, pg):
        assert phones.refresh(con, "2026-11-22", fallback_region="US")["new_texts"] == 0


def test_table_and_view_helpers_replace_in_one_transaction(pg):
    from orchestration.engine import recreate_table, replace_table, replace_view, store_table

    pg.execute("create schema s")
    replace_table(pg, "s.t", "select 1 as a, 'x' as b")
    replace_view(pg, "s.v", "select a from s.t")
    # Postgres' own `create or replace view` refuses a changed column list; the helper does not
    replace_view(pg, "s.v", "select b, a from s.t")
    assert pg.execute("select b, a from s.v").fetchall() == [("x", 1)]
    pg.execute("drop view s.v")
    replace_table(pg, "s.t", "select cast(? as bigint) as c", [7])
    assert pg.execute("select * from s.t").fetchall() == [(7,)]
    # inside the caller's transaction, a rollback undoes the replacement
    pg.execute("begin")
    replace_table(pg, "s.t", "select 8 as c")
    pg.execute("rollback")
    assert pg.execute("select * from s.t").fetchall() == [(7,)]
    recreate_table(pg, "s.t", "k varchar, n bigint")
    assert pg.execute("select count(*) from s.t").fetchone() == (0,)
    store_table(pg, "s.u", pa.table({"k": pa.array(["a", "", None]), "n": pa.array([1, None, 3])}))
    assert sorted(pg.execute("select k, n from s.u").fetchall(), key=repr) == sorted(
        [("a", 1), ("", None), (None, 3)], key=repr
    )


def test_a_replaced_table_keeps_the_views_on_it_while_its_columns_stay(pg):
    from orchestration.engine import replace_table, replace_view

    pg.execute("create schema s")
    replace_table(pg, "s.t", "select 1 as a")
    replace_view(pg, "s.v", "select a from s.t")
    replace_table(pg, "s.t", "select 2 as a")  # Postgres would refuse a drop: the view needs it
    assert pg.execute("select a from s.v").fetchall() == [(2,)]
    replace_table(pg, "s.t", "select 'x' as b")  # other columns: the view goes, as on DuckDB
    assert pg.execute("select b from s.t").fetchall() == [("x",)]
    views = "select count(*) from information_schema.views where table_schema = 's'"
    assert pg.execute(views).fetchone() == (0,)


def test_registering_an_empty_or_all_null_frame_works_and_a_failure_keeps_its_error(pg):
    import pandas as pd
    import psycopg2

    pg.register("_empty", pd.DataFrame({"customer_id": pd.Series([], dtype=object)}))
    assert pg.execute("select count(*) from _empty").fetchone() == (0,)
    pg.register("_nulls", pd.DataFrame({"k": ["a", "b"], "reason": [None, None]}))
    assert pg.execute("select k, reason from _nulls order by k").fetchall() == [
        ("a", None),
        ("b", None),
    ]
    pg.execute("begin")
    pg.register("_in_tx", pa.table({"k": ["a"]}))
    with pytest.raises(psycopg2.errors.UndefinedTable):
        try:
            pg.execute("select * from no_such_table")
        finally:
            pg.unregister("_in_tx")  # in the failed transaction: must not replace the error
    pg.execute("rollback")


def test_the_session_runs_in_utc(pg):
    assert pg.execute("select current_setting('TimeZone')").fetchone() == ("UTC",)
