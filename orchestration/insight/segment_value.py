"""Revenue and CLV per segment: `marts.kpi_segment_value`, one row per segment at as_of.

Computed after the CLV fit of the same night (marts.customer_clv is a Python asset that runs after
the dbt build, so a dbt model could only read the previous night's fit). Members are the rows of
`marts.segment_membership` (held-out members included: the segment's value, not the campaign's);
revenue comes from `marts.customer_360` (lifetime revenue, orders in the last 365 days) and the
CLV traits from `marts.customer_clv` when it exists (null columns otherwise, e.g. before the first
fit). A segment without members has no row.
"""

from __future__ import annotations

import datetime as dt

from orchestration.engine import Connection, replace_table, table_exists

TABLE = "marts.kpi_segment_value"
CLV_TABLE = "marts.customer_clv"


def _exists(con: Connection, table: str) -> bool:
    return table_exists(con, *table.split("."))


def sql(with_clv: bool) -> str:
    """The mart's query (CLV columns null without marts.customer_clv)."""
    clv_join = (
        f"left join {CLV_TABLE} as clv on m.customer_id = clv.customer_id" if with_clv else ""
    )
    clv = (
        "count(clv.predicted_value_12m) as customers_with_clv, "
        "round(sum(clv.predicted_value_12m), 6) as predicted_value_12m, "
        "round(avg(clv.predicted_value_12m), 6) as predicted_value_12m_per_customer, "
        "round(avg(clv.p_alive), 9) as p_alive_mean, "
        "round(avg(clv.expected_purchases_90d), 9) as expected_purchases_90d_mean"
        if with_clv
        else "cast(0 as bigint) as customers_with_clv, "
        "cast(null as double) as predicted_value_12m, "
        "cast(null as double) as predicted_value_12m_per_customer, "
        "cast(null as double) as p_alive_mean, cast(null as double) as expected_purchases_90d_mean"
    )
    # Sums of doubles depend on the order parallel threads add them in; rounded, a rerun of the
    # same night gives the same table.
    return f"""
        select
            m.segment_name,
            count(*) as members,
            count(*) filter (where m.is_holdout) as held_out,
            count(*) filter (where c.order_count > 0) as buyers,
            cast(coalesce(sum(c.lifetime_revenue), 0) as double) as lifetime_revenue,
            round(cast(coalesce(avg(coalesce(c.lifetime_revenue, 0)), 0) as double), 6)
                as lifetime_revenue_per_member,
            coalesce(sum(c.orders_last_365d), 0) as orders_last_365d,
            {clv}
        from marts.segment_membership as m
        left join marts.customer_360 as c on m.customer_id = c.customer_id
        {clv_join}
        group by m.segment_name
        order by m.segment_name
    """


def run(con: Connection, as_of: dt.date) -> int:
    """Rewrite marts.kpi_segment_value; the number of segments written."""
    query = sql(_exists(con, CLV_TABLE))
    replace_table(con, TABLE, f"select q.*, cast(? as date) as as_of from ({query}) as q", [as_of])
    return con.execute(f"select count(*) from {TABLE}").fetchone()[0]
