"""engine.transpile: DuckDB SQL written for Postgres, and DuckDB-only forms refused by name."""

from __future__ import annotations

import pytest

from orchestration.engine.transpile import UntranslatableSQL, translate
from orchestration.identity import phones


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("insert or replace into t select 1", "insert or replace"),
        ("insert or ignore into t values (1)", "insert or ignore"),
        ("create or replace table s.t as select 1 as a", "create or replace table"),
        ("select a, count(*) from t group by all", "group by all"),
        ("delete from t where rowid in (select rowid from t)", "rowid"),
    ],
)
def test_duckdb_only_forms_are_refused_naming_the_form_and_the_statement(sql, named):
    with pytest.raises(UntranslatableSQL, match="postgres") as err:
        translate(sql, "postgres")
    assert named in str(err.value) and sql[:20] in str(err.value)


def test_placeholders_become_the_drivers_and_percent_signs_are_doubled():
    (out,) = translate("select a from t where b like 'x%' and c = ? and d = ?", "postgres")
    assert out.count("%s") == 2 and "'x%%'" in out and "?" not in out


def test_several_statements_come_back_one_by_one():
    out = translate("create schema if not exists s; create table s.t (a varchar)", "postgres")
    assert len(out) == 2 and out[1].startswith("CREATE TABLE")


def test_create_or_replace_view_and_window_subqueries_translate():
    (view,) = translate("create or replace view v as select 1 as a", "postgres")
    assert view.startswith("CREATE OR REPLACE VIEW")
    (q,) = translate(
        "select a from (select a, row_number() over (order by a) as n from t) as w where n = 1",
        "postgres",
    )
    assert "ROW_NUMBER()" in q and "n = 1" in q


def test_every_statement_of_the_phone_step_translates():
    tables = {table for table, _ in phones.PHONE_INPUTS}
    inputs = phones._new_inputs_sql(tables)
    assert inputs and all("raw." + t in inputs for t in tables)
    for sql in (inputs, "select table_name from information_schema.tables"):
        assert translate(sql, "postgres")


def test_named_parameters_become_psycopg_named_ones():
    (out,) = translate(
        "select a from t where b <= $cutoff and c > $period_end and d like '%x'", "postgres"
    )
    assert "%(cutoff)s" in out and "%(period_end)s" in out and "'%%x'" in out and "$" not in out


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("select * exclude (a) from t", "exclude"),
        ("select * replace (1 as a) from t", "replace"),
        ("select a from t union all by name select a from u", "by name"),
        ("insert into t by name select 1 as a", "by name"),
        ("select a from t order by all", "order by all"),
        ("select a from t qualify row_number() over (order by a) = 1 limit ?", "qualify"),
        ("select now() - interval ? day", "interval"),
        ("select printf('%.6f', x) from t", "printf"),
        ("select a from t where b = $1", "$1"),
        ("select t.rowid from t", "rowid"),
    ],
)
def test_more_duckdb_only_forms_are_refused(sql, named):
    with pytest.raises(UntranslatableSQL) as err:
        translate(sql, "postgres")
    assert named in str(err.value)
