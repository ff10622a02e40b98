"""Measurement: the lift of every sync with a holdout (marts.campaign_lift) and revenue and CLV
per segment (marts.kpi_segment_value), after the dbt build and the CLV fit of the night (logic:
orchestration/insight/lift.py and segment_value.py; docs/insight.md "Measurement")."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.insight import lift, segment_value
from orchestration.run_model import as_of_from

LIFT_KEY = dg.AssetKey(["marts", "campaign_lift"])
SEGMENT_VALUE_KEY = dg.AssetKey(["marts", "kpi_segment_value"])


@nightly_asset(
    key=LIFT_KEY,
    deps=keys("marts/campaign_outcomes"),
    group_name="insight",
    sources=(__file__, lift),
)
def campaign_lift(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """marts.campaign_lift: per sync with a holdout, A/B/n arm and send night (and over all its
    nights), conversion and revenue per member of the treated vs the held-out members in the
    attribution window, the difference with a 95 % interval (Newcombe for conversion, Welch for
    revenue), a sample-ratio-mismatch check across the holdout and every arm against their
    configured shares and ROI when a cost per contact is configured. Complete windows only."""
    as_of = as_of_from(context)
    config = lift.settings()
    with warehouse.connection() as con:
        rows = lift.run(con, as_of, config)
    pooled = [r for r in rows if r.scope == "all_nights"]
    flagged = sorted({r.sync_id for r in rows if r.is_srm})
    if flagged:
        context.log.warning(f"campaign_lift: sample-ratio mismatch in {', '.join(flagged)}")
    metadata: dict[str, dg.RawMetadataValue] = {
        "dagster/row_count": len(rows),
        "syncs_measured": len(pooled),
        "srm_flagged_syncs": ", ".join(flagged) or "none",
    }
    for r in pooled:
        name = r.sync_id if r.arm is None else f"{r.sync_id}/{r.arm}"
        metadata[f"{name}/conversion_lift"] = round(r.conversion_lift, 5)
        metadata[f"{name}/conversion_lift_95ci"] = (
            f"[{r.conversion_lift_low:+.4f}, {r.conversion_lift_high:+.4f}] over {r.nights} "
            f"night(s), {r.treated} treated vs {r.held_out} held out"
        )
        metadata[f"{name}/revenue_lift_per_member"] = round(r.revenue_lift_per_member, 4)
        if r.roi is not None:
            metadata[f"{name}/roi"] = round(r.roi, 4)
    return dg.MaterializeResult(metadata=metadata)


@nightly_asset(
    key=SEGMENT_VALUE_KEY,
    deps=keys("marts/segment_membership", "marts/customer_360", "marts/customer_clv"),
    group_name="insight",
    sources=(__file__, segment_value),
)
def kpi_segment_value(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    """marts.kpi_segment_value: one row per segment at as_of with members, held out, buyers,
    lifetime revenue (total and per member), orders in the last 365 days and the CLV of the night's
    fit (predicted 12-month value, mean P(alive), expected purchases in 90 days)."""
    as_of = as_of_from(context)
    with warehouse.connection() as con:
        segments = segment_value.run(con, as_of)
        rows = con.execute(
            f"select segment_name, members, lifetime_revenue_per_member, "
            f"predicted_value_12m_per_customer from {segment_value.TABLE}"
        ).fetchall()
    table = (
        "| segment | members | revenue / member | CLV 12m / customer |\n| --- | --- | --- | --- |\n"
    )
    table += "".join(
        f"| {name} | {members} | {revenue:.2f} | {'' if clv is None else f'{clv:.2f}'} |\n"
        for name, members, revenue, clv in rows
    )
    return dg.MaterializeResult(
        metadata={"dagster/row_count": segments, "segments": dg.MetadataValue.md(table)}
    )


defs = dg.Definitions(assets=[campaign_lift, kpi_segment_value])
