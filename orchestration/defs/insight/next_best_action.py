"""Next-best action per customer from the action YAML in dbt_project/actions/, after the marts it
reads (logic: orchestration/insight/next_best_action.py; docs/insight.md). Activation runs after
it, so a sync naming `action: <name>` sends this night's next-best actions."""

import dagster as dg

from orchestration.asset_args import nightly_asset
from orchestration.defs.insight.clv import KEY as CLV_KEY
from orchestration.defs.insight.send_time import KEY as SEND_TIME_KEY
from orchestration.defs.resources import Warehouse
from orchestration.insight import next_best_action
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["marts", "next_best_action"])


@nightly_asset(
    key=KEY,
    deps=[
        dg.AssetKey(["marts", "customer_360"]),
        dg.AssetKey(["marts", "consent_state"]),
        # an eligibility rule may refer to a segment ({segment: name})
        dg.AssetKey(["marts", "segment_membership"]),
        CLV_KEY,
        SEND_TIME_KEY,
    ],
    group_name="insight",
    sources=(__file__, next_best_action),
)
def next_best_action_mart(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    """marts.next_best_action: one row per customer x action (dbt_project/actions/*.yml) whose
    eligibility rule holds at as_of, ranked per customer (sendable first, then priority, then
    expected value) with reason codes, expected value (allow-listed value model over customer_clv),
    eligibility flags (consent for the channel and purpose, suppression, erasure, global exclusion,
    frequency cap and cooldown from contact_history, holdout) and send_at, the next occurrence of
    the customer's best hour of the week (customer_send_time) in their time zone and in UTC. View
    marts.action_membership: the next-best rows as an audience a sync names with `action: <name>`.
    """
    as_of = as_of_from(context)
    with warehouse.connection() as con:
        result = next_best_action.run(con, as_of)
    meta = result.metadata()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "customers_with_next_best_action": result.customers_with_action,
            "population_best_hour": result.population_hour,
            "actions": dg.MetadataValue.json(meta["actions"]),
            "seconds": meta["seconds"],
        }
    )


defs = dg.Definitions(assets=[next_best_action_mart])
