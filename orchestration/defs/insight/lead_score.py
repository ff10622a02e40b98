"""Lead score (PQL/MQL) per customer: logistic regression on behaviour before a cut-off and
conversion after it, evaluated on a later window at each fit, after customer_360 is built (logic:
orchestration/insight/lead_score.py; config: dbt_project/insight/lead_score.yml; docs/insight.md)."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.insight import lead_score
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["marts", "customer_lead_score"])


@nightly_asset(
    key=KEY,
    deps=keys("marts/customer_360"),
    group_name="insight",
    kinds={"duckdb", "python", "scikitlearn"},
    sources=(__file__, lead_score),
)
def customer_lead_score(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    """marts.customer_lead_score: one row per customer of customer_360 with lead_score (the
    probability of a revenue order in the next window_days), lead_tier (pql / mql / cold, thresholds
    in dbt_project/insight/lead_score.yml), top_reasons in plain words and reason_codes; null for
    customers without a shop account. Logistic regression on standardized web, email, order and
    loyalty behaviour before a cut-off; fitted when due (dbt_project/insight/refit.yml) and then
    evaluated on a later window (ROC AUC, Brier score, reliability table in audit.lead_score_fits),
    scored every night. A degenerate fit is refused and the last good scores kept."""
    as_of = as_of_from(context)
    with warehouse.connection() as con:
        result = lead_score.run(con, as_of, context.run_id)
    if result.status != "ok" or result.message != "ok":
        context.log.warning(f"lead score: {result.message}")
    metadata: dict[str, dg.RawMetadataValue] = {"dagster/row_count": result.rows}
    metadata.update({k: v for k, v in result.metadata().items() if v is not None})
    if result.evaluation is not None and result.evaluation.reliability:
        metadata["eval_reliability"] = dg.MetadataValue.md(result.evaluation.reliability_markdown())
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[customer_lead_score])
