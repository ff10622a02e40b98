"""marts.customer_360_insight: the golden record with CLV, lead score and best time to send, one
row per customer, rebuilt after the night's insight assets (logic:
orchestration/insight/customer_360_insight.py; docs/insight.md)."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.insight import customer_360_insight as view

KEY = dg.AssetKey(["marts", "customer_360_insight"])
GRAIN_CHECK = "one_row_per_customer_360_row"
GRAIN_SPEC = dg.AssetCheckSpec(
    GRAIN_CHECK,
    asset=KEY,
    description="The view has exactly customer_360's rows, one per customer_id.",
)


@nightly_asset(
    key=KEY,
    deps=keys(
        "marts/customer_360",
        "marts/customer_clv",
        "marts/customer_lead_score",
        "marts/customer_send_time",
    ),
    group_name="insight",
    sources=(__file__, view),
    check_specs=[GRAIN_SPEC],
)
def customer_360_insight(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """marts.customer_360_insight (view): one row per customer of customer_360 with all its columns
    plus expected_purchases_90d, p_alive, predicted_value_12m (customer_clv), lead_score, lead_tier,
    lead_score_reasons, lead_score_as_of (customer_lead_score), best_hour_of_week, best_local_time,
    best_hour_confidence(_level) (customer_send_time)."""
    with warehouse.connection() as con:
        view.build(con)
        counts = view.check(con)
        schema = dg.TableSchema(
            columns=[
                dg.TableColumn(name=name, type=dtype, description=text)
                for name, dtype, text in view.columns(con)
            ]
        )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": counts["rows"],
            "dagster/column_schema": schema,
            **{k: v for k, v in counts.items() if k != "rows"},
        }
    )
    passed = counts["rows"] == counts["distinct_customers"] == counts["customer_360_rows"]
    yield dg.AssetCheckResult(
        check_name=GRAIN_CHECK,
        passed=passed,
        metadata={k: counts[k] for k in ("rows", "distinct_customers", "customer_360_rows")},
    )


defs = dg.Definitions(assets=[customer_360_insight])
