"""The Python steps that run after dbt, on DuckDB and on another engine, and the comparison of
their answers (shared by tests/e2e/test_postgres.py and test_spark.py): identity's training and
probabilistic links between the two dbt builds; graph health, a traits mart, the insight models
(CLV, lead score, send time, segment value, next best action), the marketer report's data, the
insight view and campaign lift after them."""

from __future__ import annotations

import datetime as dt
from dataclasses import astuple
from typing import Any

import pandas as pd

from orchestration.engine import Connection, dialect_of


def engine_rows(con: Connection, sql: str) -> list[tuple]:
    """Rows of `sql`; DuckDB's `* exclude (as_of)`, which other engines lack, done by dropping
    the column from the result."""
    if "exclude (as_of)" not in sql or dialect_of(con) == "duckdb":
        return con.execute(sql).fetchall()
    cursor = con.execute(sql.replace(" exclude (as_of)", ""))
    drop = [c[0] for c in cursor.description].index("as_of")
    return [r[:drop] + r[drop + 1 :] for r in cursor.fetchall()]


def close(a: object, b: object) -> bool:
    """Equal, floats to a relative 1e-6 (the engines sum in different orders)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))
    return a == b


def same_rows(a: list[tuple], b: list[tuple]) -> bool:
    rows_a, rows_b = sorted(a, key=repr), sorted(b, key=repr)
    return len(rows_a) == len(rows_b) and all(
        len(x) == len(y) and all(close(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(rows_a, rows_b, strict=True)
    )


def identity_steps(con: Connection, as_of: dt.date) -> dict[str, Any]:
    """The identity steps between the two dbt builds: the model trained without labels on the
    warehouse's records, then the probabilistic links scored with it, twice (the second night
    has nothing new and re-uses the pairs)."""
    from orchestration.identity import config as identity_config
    from orchestration.identity import probabilistic, training

    settings = identity_config.load().probabilistic
    records = probabilistic.candidates(con)
    outcome = training.train(con, as_of, settings, force=True)
    model, threshold, label = training.model_in_use(con, settings)
    first = probabilistic.refresh(con, as_of.isoformat(), True, threshold, model)
    again = probabilistic.refresh(con, as_of.isoformat(), True, threshold, model)
    links = con.execute(
        "select record_key, node_key, identifier_value, match_probability, as_of "
        f"from {probabilistic.TABLE}"
    ).fetchall()
    return {"records": records, "attempt": outcome.attempt, "label": label,
            "threshold": threshold, "first": first, "again": again, "links": links}  # fmt: skip


def assert_same_identity(other: dict[str, Any], duck: dict[str, Any], customers: int) -> None:
    """identity_steps on another engine (`other`) gave DuckDB's answers."""
    assert duck["records"].num_rows > customers / 2
    assert sorted(other["records"].to_pylist(), key=repr) == sorted(
        duck["records"].to_pylist(), key=repr
    )
    assert (other["attempt"].status, other["attempt"].records) == (
        duck["attempt"].status,
        duck["attempt"].records,
    )
    assert close(other["attempt"].match_prior, duck["attempt"].match_prior)
    assert (other["label"], other["threshold"]) == (duck["label"], duck["threshold"])
    assert (other["first"].links, other["first"].reused) == (duck["first"].links, False)
    assert duck["first"].links > 0 and other["again"].reused and duck["again"].reused
    assert same_rows(other["links"], duck["links"])


def _plant_outcomes(con: Connection, ids: list[str], as_of: dt.date) -> None:
    """A campaign_outcomes-shaped table: two nights of one sync, treated and held out."""
    con.execute("create schema if not exists e2e")
    con.execute("drop table if exists e2e.outcomes")
    con.execute(
        "create table e2e.outcomes (sync_id varchar, segment_name varchar, as_of date, "
        "customer_id varchar, is_holdout boolean, outcome varchar, has_ordered boolean, "
        "order_revenue decimal(12, 2), is_window_complete boolean)"
    )
    rows = pd.DataFrame(
        {
            "sync_id": "s1",
            "segment_name": "vip",
            "as_of": [as_of - dt.timedelta(days=14 + i % 2) for i in range(len(ids[:120]))],
            "customer_id": ids[:120],
            "is_holdout": [i % 5 == 0 for i in range(len(ids[:120]))],
            "outcome": "ok",
            "has_ordered": [i % 3 == 0 for i in range(len(ids[:120]))],
            "order_revenue": [
                round(10 + i * 1.37, 2) if i % 3 == 0 else 0.0 for i in range(len(ids[:120]))
            ],
            "is_window_complete": True,
        }
    )
    con.register("_e2e_outcomes", rows)
    try:
        con.execute("insert into e2e.outcomes select * from _e2e_outcomes")
    finally:
        con.unregister("_e2e_outcomes")


# the tables the steps write, read back for the comparison
TABLES = {
    "traits": "select * from marts.e2e_traits",
    "health": "select as_of, run_id, customers, records, merges, splits from {health}",
    "clv": "select * exclude (as_of) from {clv}",
    "lead_score": "select * exclude (as_of) from {lead_score}",
    "send_time": "select * exclude (as_of) from {send_time}",
    "segment_value": "select * from {segment_value}",
    "lift": "select * from e2e.lift",
    "next_best_action": "select * from {next_best_action}",
    "action_membership": "select * from {action_membership}",
}


def insight_steps(con: Connection, ids: list[str], as_of: dt.date, run_id: str) -> dict[str, Any]:
    """The steps after dbt on `con`, over the marts' customers `ids`; their outcomes and the
    rows of every table they write (TABLES)."""
    from orchestration.identity import health
    from orchestration.insight import (
        clv,
        customer_360_insight,
        lead_score,
        lift,
        next_best_action,
        report_data,
        segment_value,
        send_time,
    )
    from orchestration.insight.traits_table import replace_traits

    some = ids[::3]
    frame = pd.DataFrame(
        {"customer_id": some, "score": [i / 7 for i in range(len(some))],
         "label": [None if i % 4 == 0 else f"l{i % 3}" for i in range(len(some))]}
    )  # fmt: skip
    measured = health.measure(con, as_of, run_id)
    health.record(con, measured, run_id)
    run: dict[str, Any] = {
        "measured": measured,
        "traits_rows": replace_traits(
            con, "marts.e2e_traits", frame, "traits.score, traits.label", as_of
        ),
        "clv": clv.run(con, as_of, run_id),
        "lead_score": lead_score.run(con, as_of, run_id),
        "send_time": send_time.run(con, as_of, run_id),
        "segments": segment_value.run(con, as_of),
    }
    nba = next_best_action.run(con, as_of)
    nba.seconds = 0.0
    run["nba"] = nba
    # the marketer report's data, after the insight marts and the planted lift
    run["report"] = report_data.collect(con, as_of)
    customer_360_insight.build(con)
    run["insight_view"] = (
        customer_360_insight.check(con),
        [c[0] for c in customer_360_insight.columns(con)],
    )
    # lift over planted outcomes (no campaign has run on the fixture)
    _plant_outcomes(con, ids, as_of)
    run["lift"] = lift.compute(con, as_of, {"vip": 0.2}, {"s1": 0.05}, outcomes="e2e.outcomes")
    lift.write(con, run["lift"], "e2e.lift")
    names = {
        "health": health.TABLE, "clv": clv.TRAITS_TABLE, "lead_score": lead_score.TRAITS_TABLE,
        "send_time": send_time.TRAITS_TABLE, "segment_value": segment_value.TABLE,
        "next_best_action": next_best_action.TABLE,
        "action_membership": next_best_action.AUDIENCE_VIEW,
    }  # fmt: skip
    run["tables"] = {key: engine_rows(con, sql.format(**names)) for key, sql in TABLES.items()}
    run["ids"], run["some"] = ids, some
    return run


def assert_same_insight(other: dict[str, Any], duck: dict[str, Any], customers: int) -> None:
    """insight_steps on another engine (`other`) gave DuckDB's answers."""
    d, p = duck, other
    ids = d["ids"]
    assert p["measured"] == d["measured"] and d["measured"].customers > customers / 2
    assert p["traits_rows"] == d["traits_rows"] == len(ids)
    assert sum(r[1] is not None for r in d["tables"]["traits"]) == len(d["some"])
    fit_d, fit_p = d["clv"][0], p["clv"][0]
    assert (fit_p.converged, fit_p.customers) == (fit_d.converged, fit_d.customers) != (None, 0)
    assert all(
        close(getattr(fit_p, k), getattr(fit_d, k)) for k in ("r", "alpha", "a", "b", "p", "q", "v")
    )
    assert (p["lead_score"].status, p["lead_score"].rows) == (d["lead_score"].status, len(ids))
    assert p["send_time"].rows == d["send_time"].rows == len(ids)
    assert p["send_time"].customers_with_events == d["send_time"].customers_with_events > 0
    for key in TABLES:
        assert same_rows(p["tables"][key], d["tables"][key]), key
    assert sum(r[2] is not None for r in d["tables"]["clv"]) > 0  # p_alive scored for buyers
    assert p["segments"] == d["segments"] > 0
    assert p["nba"] == d["nba"] and d["nba"].rows > 0 and d["nba"].customers_with_action > 0
    assert p["insight_view"] == d["insight_view"]
    shown = 0
    for name in ("segment_sizes", "clv", "retention", "lift", "calibration"):
        sp, sd = getattr(p["report"], name), getattr(d["report"], name)
        assert (sp.empty_reason, sp.facts) == (sd.empty_reason, sd.facts), name
        assert (sp.frame is None) == (sd.frame is None), name
        if sd.frame is not None:
            shown += 1
            assert list(sp.frame.columns) == list(sd.frame.columns), name
            rows = [tuple(r) for r in sd.frame.itertuples(index=False)]
            assert same_rows([tuple(r) for r in sp.frame.itertuples(index=False)], rows), name
    assert shown >= 2  # CLV and retention at least have data on the fixture
    assert d["insight_view"][0]["rows"] == d["insight_view"][0]["distinct_customers"] == len(ids)
    assert len(d["lift"]) >= 2 and all(
        all(close(x, y) for x, y in zip(astuple(a), astuple(b), strict=True))
        for a, b in zip(p["lift"], d["lift"], strict=True)
    )
