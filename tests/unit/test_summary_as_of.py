"""The run summary reads only the asked as_of: figures kept per as_of are read for it, the marts
(which hold the latest run's as_of) only when it is theirs; a date never run is refused; a run
that found no new landing file says so."""

import datetime as dt

import duckdb
import pytest

from orchestration.summary import NO_NEW_FILES, NoRunForDate, new_files, render_summary

D1, D2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)


@pytest.fixture
def con():
    """Two nightly runs: D1 published crm and shop files; D2 found a new crm file only, then a
    rerun of D2 found nothing new. The marts hold D2."""
    con = duckdb.connect()
    for schema in ("audit", "marts", "activation"):
        con.execute(f"create schema {schema}")
    con.execute(
        "create table audit.ingestion_batches (batch_id varchar, contract_id varchar, "
        "as_of date, run_id varchar, status varchar, outcome json, staged_at timestamp)"
    )
    con.execute(
        "insert into audit.ingestion_batches values "
        "('b1', 'crm__contacts', '2026-11-20', 'r1', 'published', null, '2026-11-21 02:00'), "
        "('b2', 'shop__orders', '2026-11-20', 'r1', 'published', null, '2026-11-21 02:01'), "
        "('b3', 'crm__contacts', '2026-11-21', 'r2', 'published', null, '2026-11-22 02:00'), "
        "(null, 'shop__orders', '2026-11-21', 'r2', 'staged', null, '2026-11-22 02:01'), "
        "(null, 'crm__contacts', '2026-11-21', 'r3', 'staged', null, '2026-11-22 09:00'), "
        "(null, 'shop__orders', '2026-11-21', 'r3', 'staged', null, '2026-11-22 09:01')"
    )
    con.execute(
        "create table audit.ingestion_audit as select * from (values "
        "('crm__contacts', date '2026-11-20', 111, 111, 0, 0), "
        "('shop__orders', date '2026-11-20', 222, 220, 2, 0), "
        "('crm__contacts', date '2026-11-21', 333, 333, 0, 0)) "
        "as t(contract_id, as_of, extracted, loaded, quarantined, deduplicated)"
    )
    con.execute(
        "create table marts.customer_360 as select 'c' || i as customer_id, "
        "date '2026-11-21' as as_of from range(7) as r(i)"
    )
    con.execute(
        "create table audit.segment_stats as select * from (values "
        "(date '2026-11-20', 'vip', 41, 41, 0, 4), (date '2026-11-21', 'vip', 59, 18, 0, 6)) "
        "as t(as_of, segment_name, members, entered, exited, holdout)"
    )
    con.execute(
        "create table activation.contact_history as select * from (values "
        "('file_drop__vip', date '2026-11-20', 'ok'), ('file_drop__vip', date '2026-11-21', 'ok'),"
        " ('file_drop__vip', date '2026-11-21', 'ok')) as t(sync_id, as_of, outcome)"
    )
    yield con
    con.close()


def test_a_date_never_run_is_refused_naming_the_dates_held(con):
    with pytest.raises(NoRunForDate) as refused:
        render_summary(con, dt.date(2026, 11, 19), None)
    message = str(refused.value)
    assert message.startswith("no run for 2026-11-19")
    assert "2026-11-20, 2026-11-21" in message and "c360 run --as-of 2026-11-19" in message
    assert "\n" not in message


def test_an_earlier_as_of_prints_its_own_figures_not_the_latest(con):
    text = render_summary(con, D1, None)
    assert "as_of 2026-11-20" in text
    assert "111" in text and "222" in text and "333" not in text  # ingestion of D1 only
    assert "vip" in text and " 41 " in text and "59" not in text  # segments of D1
    # the marts hold D2: named, not printed as D1's
    assert "marts.customer_360" not in text and "hold as_of 2026-11-21" in text
    activation = text.split("Activation (this as_of)")[1]
    assert "file_drop__vip" in activation and activation.split()[-4] == "1"
    assert NO_NEW_FILES not in text


def test_the_latest_as_of_prints_the_marts(con):
    text = render_summary(con, D2, None)
    assert "333" in text and "111" not in text
    assert "marts.customer_360" in text and "7 rows" in text and "59" in text


def test_a_rerun_that_found_no_new_landing_file_says_so(con):
    found = new_files(con, D2)
    assert found.run_id == "r3" and found.none_found
    text = render_summary(con, D2, None)
    assert f"WARNING: {NO_NEW_FILES}" in text and "earlier run of this as_of" in text


def test_a_run_with_some_sources_without_new_files_names_them(con):
    con.execute("delete from audit.ingestion_batches where run_id = 'r3'")
    found = new_files(con, D2)
    assert found.with_new_files == ["crm__contacts"] and found.without_new_files == ["shop__orders"]
    text = render_summary(con, D2, None)
    assert NO_NEW_FILES not in text
    assert "no new landing files in the last run for: shop__orders" in text
