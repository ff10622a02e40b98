"""segment_membership's post-hook: history of stays (entered/exited per as_of) and per-run stats,
idempotent when an as_of runs again. Runs the macro's SQL (rendered as dbt renders it) in DuckDB."""

import datetime as dt

import duckdb

from orchestration.dbt_macros import project_macros

NAMES = ["vip", "win_back"]


def _run(con: duckdb.DuckDBPyConnection, as_of: str, members: list[tuple[str, str, bool]]) -> None:
    con.execute(
        "create or replace table segment_membership (customer_id varchar, segment_name varchar, is_holdout boolean)"
    )
    con.executemany("insert into segment_membership values (?, ?, ?)", members)
    module = project_macros(
        ("state_tables", "segment_state"),
        context={"this": "segment_membership", "as_of_date": lambda: f"cast('{as_of}' as date)"},
    )
    for sql in (str(module.create_state_tables()), str(module.persist_segment_history(NAMES))):
        for statement in filter(str.strip, sql.split(";")):
            con.execute(statement)


def _history(con):
    return con.execute(
        "select customer_id, segment_name, entered_as_of, exited_as_of, is_holdout "
        "from audit.segment_membership_history order by 1, 2, 3"
    ).fetchall()


def _stats(con, as_of: str):
    return con.execute(
        "select segment_name, members, entered, exited, holdout from audit.segment_stats "
        "where as_of = ? order by 1",
        [as_of],
    ).fetchall()


def test_history_records_stays_and_reruns_change_nothing():
    d1, d2, d3 = dt.date(2026, 11, 20), dt.date(2026, 11, 21), dt.date(2026, 11, 22)
    con = duckdb.connect()
    _run(con, "2026-11-20", [("a", "vip", False), ("b", "vip", True)])
    _run(con, "2026-11-21", [("a", "vip", False), ("c", "vip", False)])  # b leaves, c enters
    after_d2 = _history(con)
    assert after_d2 == [
        ("a", "vip", d1, None, False),
        ("b", "vip", d1, d2, True),
        ("c", "vip", d2, None, False),
    ]
    assert _stats(con, "2026-11-21") == [("vip", 2, 1, 1, 0), ("win_back", 0, 0, 0, 0)]
    # a rerun of the same as_of (same data) changes nothing
    _run(con, "2026-11-21", [("a", "vip", False), ("c", "vip", False)])
    assert _history(con) == after_d2
    assert _stats(con, "2026-11-21") == [("vip", 2, 1, 1, 0), ("win_back", 0, 0, 0, 0)]
    # a rerun of the as_of with corrected data replaces what the first run of it decided
    _run(con, "2026-11-21", [("a", "vip", False), ("b", "vip", True)])
    assert _history(con) == [("a", "vip", d1, None, False), ("b", "vip", d1, None, True)]
    assert _stats(con, "2026-11-21") == [("vip", 2, 0, 0, 1), ("win_back", 0, 0, 0, 0)]
    # leaving and coming back is a second stay
    _run(con, "2026-11-22", [("b", "vip", True), ("a", "win_back", False)])
    _run(con, "2026-11-23", [("a", "vip", False), ("b", "vip", True)])
    assert [r for r in _history(con) if r[0] == "a"] == [
        ("a", "vip", d1, d3, False),
        ("a", "vip", dt.date(2026, 11, 23), None, False),
        ("a", "win_back", d3, dt.date(2026, 11, 23), False),
    ]
