"""The over-merge breaker compares a run with the last measured run of any as_of: a rerun at the
same as_of that merges many customers trips it, and an unchanged rerun does not."""

import datetime as dt

import duckdb
import pytest

from orchestration.identity import health
from orchestration.identity.health import Bounds

D = dt.date(2026, 11, 21)
BOUNDS = Bounds(max_cluster_records=50, max_merge_rate=0.02)


def _warehouse(customers: int) -> duckdb.DuckDBPyConnection:
    """The tables measure() reads: `customers` one-record customers, an empty merge log."""
    con = duckdb.connect()
    for schema in ("marts", "intermediate", "audit"):
        con.execute(f"create schema {schema}")
    con.execute("create table marts.customer_id_map (record_key varchar, customer_id varchar)")
    con.execute(
        "create table intermediate.int_identity__edges (record_key varchar, node_key varchar, "
        "identifier_type varchar, identifier_value varchar)"
    )
    con.execute(
        "create table intermediate.int_identity__limit_drops (record_key varchar, node_key varchar)"
    )
    con.execute(
        "create table audit.identity_merge_log (as_of date, event varchar, customer_id varchar, "
        "other_customer_id varchar, record_count bigint, run_id varchar)"
    )
    _assign(con, {f"r{i}": f"c{i}" for i in range(customers)})
    return con


def _assign(con, mapping: dict[str, str]) -> None:
    con.execute("delete from marts.customer_id_map")
    con.executemany("insert into marts.customer_id_map values (?, ?)", list(mapping.items()))


def _run(con, run_id: str, as_of: dt.date = D) -> health.GraphHealth:
    measured = health.measure(con, as_of, run_id)
    health.record(con, measured, run_id)
    return measured


def _rerun_merging(con, share: float, run_id: str) -> None:
    """A rerun (loosened limit) merges `share` of the 100 customers into their neighbours."""
    n = int(100 * share)
    _assign(con, {f"r{i}": f"c{i - 1 if i % 2 and i < 2 * n else i}" for i in range(100)})
    con.executemany(
        "insert into audit.identity_merge_log values (?, 'merge', ?, ?, 2, ?)",
        [(D, f"c{i - 1}", f"c{i}", run_id) for i in range(1, 2 * n, 2)],
    )


def test_same_as_of_rerun_that_over_merges_trips_the_breaker():
    con = _warehouse(100)
    first = _run(con, "run-1")  # the first run ever: nothing to compare with
    assert first.previous_customers is None and first.violations(BOUNDS) == []
    _rerun_merging(con, 0.36, "run-2")
    rerun = _run(con, "run-2")
    assert rerun.previous_customers == 100  # the same day's earlier run
    assert rerun.merges == 36
    assert rerun.merge_rate == pytest.approx(0.36)
    [problem] = rerun.violations(BOUNDS)
    assert "merge rate 0.3600 (36 merges / 100 customers" in problem


def test_unchanged_rerun_does_not_count_the_first_runs_merges_again():
    con = _warehouse(100)
    _run(con, "run-0", D - dt.timedelta(days=1))
    _rerun_merging(con, 0.01, "run-1")  # one merge, 1 %: within bounds
    first = _run(con, "run-1")
    assert (first.merges, first.previous_customers, first.violations(BOUNDS)) == (1, 100, [])
    again = _run(con, "run-2")  # same as_of, same data: dbt logs no new merge
    assert again.merges == 0 and again.previous_customers == 99
    assert again.violations(BOUNDS) == []


def test_compares_with_the_last_measured_run_of_any_as_of():
    """A backfill of an earlier day after a later one compares with the run just before it."""
    con = _warehouse(100)
    _run(con, "later", D + dt.timedelta(days=3))
    _assign(con, {f"r{i}": f"c{i}" for i in range(120)})
    back = _run(con, "backfill", D)
    assert back.previous_customers == 100
    # a re-measure within the same run does not compare the run with itself
    assert health.measure(con, D, "backfill").previous_customers == 100


def test_merges_of_a_run_whose_health_was_never_measured_still_count():
    con = _warehouse(100)
    _run(con, "run-1")
    _rerun_merging(con, 0.05, "dbt-only-run")  # its health step never ran
    later = _run(con, "health-rerun")
    assert later.merges == 5 and later.violations(BOUNDS)
