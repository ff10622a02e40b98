"""CLV and P(alive) per customer: BG/NBD + Gamma-Gamma fitted on the shop orders up to as_of,
after customer_360 is built (logic: orchestration/insight/clv.py; docs/insight.md)."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.insight import clv
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["marts", "customer_clv"])


@nightly_asset(
    key=KEY, deps=keys("marts/customer_360"), group_name="insight", sources=(__file__, clv)
)
def customer_clv(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """marts.customer_clv: one row per customer of customer_360 with expected_purchases_90d, p_alive
    and predicted_value_12m from BG/NBD + Gamma-Gamma on the revenue orders up to as_of (null for
    customers without an order, and for everyone when the fit is degenerate: the reason is in the
    metadata). Fitted when due (dbt_project/insight/refit.yml), scored every night; the fit in use
    (parameters, log-likelihood, converged, fitted_as_of) is recorded per run in audit.clv_fits."""
    as_of = as_of_from(context)
    with warehouse.connection() as con:
        fitted, rows = clv.run(con, as_of, context.run_id)
        summary = con.execute(
            "select count(p_alive), avg(p_alive), avg(expected_purchases_90d), "
            f"sum(predicted_value_12m) from {clv.TRAITS_TABLE}"
        ).fetchone()
    if not fitted.converged or fitted.refit_failed:
        context.log.warning(f"CLV: {fitted.message}")
    metadata: dict[str, dg.RawMetadataValue] = {
        "dagster/row_count": rows,
        "converged": fitted.converged,
        "message": fitted.message,
        "customers_fitted": fitted.customers,
        "repeat_customers": fitted.repeat_customers,
        "customers_with_traits": int(summary[0] or 0),
        "fit_seconds": round(fitted.seconds, 2),
        "refitted": not fitted.reused,
        "refit_failed": fitted.refit_failed,
        "fitted_as_of": str(fitted.fitted_as_of),
        "gamma_gamma_fitted_on": fitted.gg_method or "not fitted",
    }
    for name, value in (("ll", fitted.ll), ("gg_ll", fitted.gg_ll), *fitted.parameters().items()):
        if value is not None:
            metadata[name] = round(value, 6)
    if summary[1] is not None:
        metadata["p_alive_mean"] = round(summary[1], 4)
        metadata["expected_purchases_90d_mean"] = round(summary[2], 4)
    if summary[3] is not None:
        metadata["predicted_value_12m_total"] = round(summary[3], 2)
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[customer_clv])
