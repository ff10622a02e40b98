"""The golden record with its predictive traits: `marts.customer_360_insight`.

Grain: one row per customer of `marts.customer_360` (every column of it), with the CLV, lead
score and best-time-to-send traits of the insight marts joined 1:1 on `customer_id`.

It is a view, rebuilt each night after the insight assets: the insight marts are computed by
Python assets that read `customer_360`, so `customer_360` cannot join them without a cycle, and
a dbt model reading them would see the previous night's traits (dbt builds before them). A view
always shows what the marts hold now and costs nothing to rebuild.
"""

from __future__ import annotations

from orchestration.contracts.customer_360 import column_descriptions
from orchestration.engine import Connection, replace_view

VIEW = "marts.customer_360_insight"
BASE = "marts.customer_360"
CLV = "marts.customer_clv"
LEAD_SCORE = "marts.customer_lead_score"
SEND_TIME = "marts.customer_send_time"

# (view column, source mart, source column, description). Every customer_360 column comes first.
TRAITS: tuple[tuple[str, str, str, str], ...] = (
    (
        "expected_purchases_90d",
        CLV,
        "expected_purchases_90d",
        "BG/NBD expected revenue orders in the next 90 days (null without an order or a fit).",
    ),
    (
        "p_alive",
        CLV,
        "p_alive",
        "BG/NBD probability that the customer is still active (null without an order or a fit).",
    ),
    (
        "predicted_value_12m",
        CLV,
        "predicted_value_12m",
        "Expected orders in 365 days x Gamma-Gamma expected order value, undiscounted.",
    ),
    (
        "lead_score",
        LEAD_SCORE,
        "lead_score",
        "Probability of a revenue order in the lead score window (null: no shop account).",
    ),
    ("lead_tier", LEAD_SCORE, "lead_tier", "pql, mql or cold (thresholds: lead_score.yml)."),
    (
        "lead_score_reasons",
        LEAD_SCORE,
        "top_reasons",
        "What lifts the score most, largest first, joined by '; '.",
    ),
    (
        "lead_score_as_of",
        LEAD_SCORE,
        "as_of",
        "as_of of the scores: earlier than as_of when the night's fit was refused.",
    ),
    (
        "best_hour_of_week",
        SEND_TIME,
        "best_hour_of_week",
        "Best local hour of the week to send (0 = Monday 00:00 ... 167 = Sunday 23:00).",
    ),
    ("best_local_time", SEND_TIME, "best_local_time", "The same as text, e.g. 'Tue 19:00'."),
    (
        "best_hour_confidence",
        SEND_TIME,
        "confidence",
        "Posterior probability mass of the best hour.",
    ),
    (
        "best_hour_confidence_level",
        SEND_TIME,
        "confidence_level",
        "low, medium or high (low: the population's hour or a weak preference).",
    ),
)

_ALIASES = {CLV: "clv", LEAD_SCORE: "lead", SEND_TIME: "send"}


def view_sql() -> str:
    """The view's SELECT: customer_360 left-joined to each insight mart on customer_id."""
    traits = ",\n    ".join(
        f"{_ALIASES[mart]}.{column} as {name}" for name, mart, column, _ in TRAITS
    )
    joins = "\n".join(
        f"left join {mart} as {alias} on c360.customer_id = {alias}.customer_id"
        for mart, alias in _ALIASES.items()
    )
    return f"select\n    c360.*,\n    {traits}\nfrom {BASE} as c360\n{joins}"


def build(con: Connection) -> None:
    """(Re)create the view; needs customer_360 and the three insight marts."""
    con.execute("create schema if not exists marts")
    replace_view(con, VIEW, view_sql())


def check(con: Connection) -> dict[str, int]:
    """Row counts that prove the grain: the view's rows, distinct ids and customer_360's rows."""
    rows, ids = con.execute(f"select count(*), count(distinct customer_id) from {VIEW}").fetchone()
    base = con.execute(f"select count(*) from {BASE}").fetchone()[0]
    with_traits = con.execute(
        f"select count(p_alive), count(lead_score), count(best_hour_of_week) from {VIEW}"
    ).fetchone()
    return {
        "rows": int(rows),
        "distinct_customers": int(ids),
        "customer_360_rows": int(base),
        "customers_with_p_alive": int(with_traits[0]),
        "customers_with_lead_score": int(with_traits[1]),
        "customers_with_best_hour": int(with_traits[2]),
    }


def columns(con: Connection) -> list[tuple[str, str, str]]:
    """(name, type, description) of every view column; customer_360's from its dbt schema."""
    described = {**column_descriptions(), **{name: text for name, _, _, text in TRAITS}}
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' and table_name = 'customer_360_insight' "
        "order by ordinal_position"
    ).fetchall()
    return [(name, dtype, described.get(name, "From customer_360.")) for name, dtype in rows]
