"""Best time to send per customer: local hour of the week from email/web engagement, shrunk
toward the population (empirical Bayes), after customer_360 is built (logic:
orchestration/insight/send_time.py; docs/insight.md)."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.insight import send_time
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["marts", "customer_send_time"])


@nightly_asset(
    key=KEY, deps=keys("marts/customer_360"), group_name="insight", sources=(__file__, send_time)
)
def customer_send_time(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    """marts.customer_send_time: one row per customer of customer_360 with best_hour_of_week (0 =
    Monday 00:00 local), best_local_time, time_zone, n_events, confidence and confidence_level, from
    email opens/clicks and web session starts of the last 180 days in the customer's time zone,
    shrunk toward the population (Dirichlet-multinomial, prior strength by marginal likelihood).
    Fitted when due (dbt_project/insight/refit.yml) and then evaluated on the last 28 days held
    out against the population-best hour (audit.send_time_evals); scored every night."""
    as_of = as_of_from(context)
    with warehouse.connection() as con:
        result = send_time.run(con, as_of, context.run_id)
    if result.evaluation is None and not result.reused:
        context.log.warning("send time: no held-out engagement to evaluate on")
    metadata: dict[str, dg.RawMetadataValue] = {"dagster/row_count": result.rows}
    metadata.update({k: v for k, v in result.metadata().items() if v is not None})
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[customer_send_time])
