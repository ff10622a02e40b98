"""Graph health re-uses the figures of a run that measured the same graph: the same content key
(identity/graph_key.py, from the digests dbt's reusable tables took in the run) gives the earlier
figures without counting again; a key the run's dbt build did not vouch for, or another key,
measures."""

import datetime as dt

import duckdb

from orchestration.identity import graph_key, health, refusals

D = dt.date(2026, 11, 21)
MODELS = sorted(graph_key.READS)


def _warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for schema in ("marts", "intermediate", "audit"):
        con.execute(f"create schema {schema}")
    con.execute("create table marts.customer_id_map (record_key varchar, customer_id varchar)")
    con.executemany(
        "insert into marts.customer_id_map values (?, ?)",
        [("r1", "c1"), ("r2", "c1"), ("r3", "c3")],
    )
    con.execute(
        "create table intermediate.int_identity__edges as select * from (values "
        "('r1', 'v|email:a', 'email', 'a'), ('r2', 'v|email:a', 'email', 'a')) "
        "as t(record_key, node_key, identifier_type, identifier_value)"
    )
    con.execute(
        "create table intermediate.int_identity__candidate_links as "
        "select record_key, node_key from intermediate.int_identity__edges"
    )
    con.execute(
        "create table intermediate.int_identity__dropped_links "
        "(drop_reason varchar, identifier_type varchar)"
    )
    con.execute(
        "create table intermediate.int_identity__limit_drops "
        "(record_key varchar, node_key varchar, exceeded_type varchar)"
    )
    con.execute(
        "create table audit.identity_merge_log (as_of date, event varchar, customer_id varchar, "
        "other_customer_id varchar, record_count bigint, run_id varchar)"
    )
    con.execute(
        "create table audit.model_fingerprints (model varchar, code varchar, inputs varchar, "
        "output varchar, built_by_run varchar, built_as_of varchar, verified_run varchar)"
    )
    return con


def _verify(con, run_id: str, digest: str = "d", models=MODELS) -> None:
    """What dbt's reusable tables leave for a run that built or kept them."""
    con.execute("delete from audit.model_fingerprints")
    con.executemany(
        "insert into audit.model_fingerprints values (?, 'code', ?, ?, 'b', '2026-11-21', ?)",
        [(m, f"in-{digest}", f"out-{digest}", run_id) for m in models],
    )


def _night(con, run_id: str) -> tuple[health.GraphHealth, refusals.Refusals, str | None]:
    """What the graph-health asset does (orchestration/defs/transform/identity_health.py)."""
    key = graph_key.graph_key(con, run_id)
    known = health.known_figures(con, key)
    measured = health.measure(con, D, run_id, None if known is None else known[0])
    refused = known[1] if known else refusals.measure(con) or refusals.Refusals(0)
    health.record(con, measured, run_id, key, refused)
    return measured, refused, key


def test_the_same_graph_keeps_its_figures_and_another_one_is_measured():
    con = _warehouse()
    _verify(con, "run-1")
    first, first_refused, key = _night(con, "run-1")
    assert key is not None
    assert (first.customers, first.records, first.largest_cluster_records) == (2, 3, 2)
    assert first.identifiers_per_customer_max == 1 and first_refused.candidate_links == 2

    # the next run's dbt vouches for the same digests: the figures are the first run's even
    # though the tables below them changed (what the key promises is that they did not)
    con.execute("insert into marts.customer_id_map values ('r4', 'c4')")
    _verify(con, "run-2")
    second, second_refused, second_key = _night(con, "run-2")
    assert second_key == key
    assert (second.customers, second.records) == (2, 3)
    assert second_refused == first_refused
    assert second.largest_cluster_values == first.largest_cluster_values  # counted each run

    # other digests: measured, and the new rows seen
    _verify(con, "run-3", digest="e")
    third, _, third_key = _night(con, "run-3")
    assert third_key not in (None, key)
    assert (third.customers, third.records) == (3, 4)


def test_no_key_without_the_run_s_dbt_build():
    con = _warehouse()
    _verify(con, "run-1", models=MODELS[:-1])  # one model not built or kept by this run
    assert graph_key.graph_key(con, "run-1") is None
    _verify(con, "other-run")
    assert graph_key.graph_key(con, "run-1") is None
    assert graph_key.graph_key(con, "") is None
    assert health.known_figures(con, None) is None
    con.execute("alter table audit.model_fingerprints drop column verified_run")
    assert graph_key.graph_key(con, "run-1") is None
