"""The marketer report of the night: `<reports_dir>/<as_of>/index.html`, after every mart it
charts (logic: orchestration/insight/report.py; docs/insight.md "The marketer report")."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.insight import report
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["reports", "marketer_report"])


@nightly_asset(
    key=KEY,
    deps=keys(
        "marts/segment_membership",
        "marts/customer_clv",
        "marts/kpi_retention_cohorts",
        "marts/campaign_lift",
        "marts/customer_lead_score",
    ),
    group_name="insight",
    kinds={"html", "python"},
    sources=(__file__, report),
)
def marketer_report(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    """The report a marketer opens: one self-contained HTML file per night
    ($C360_HOME/reports/<as_of>/index.html) with segment sizes over time, the CLV distribution,
    retention cohorts, campaign lift with its 95 % interval and the lead score's calibration; a
    chart without data says why. The `report` link opens it."""
    as_of = as_of_from(context)
    with warehouse.connection() as con:
        path, charts = report.write(con, as_of)
    empty = {c.key: c.section.empty_reason for c in charts if c.spec is None}
    metadata: dict[str, dg.RawMetadataValue] = {
        "report": dg.MetadataValue.url(path.as_uri()),
        "path": dg.MetadataValue.path(str(path)),
        "charts_with_data": len(charts) - len(empty),
        "charts_without_data": ", ".join(empty) or "none",
        "size_kb": round(path.stat().st_size / 1024),
    }
    for key, reason in empty.items():
        metadata[f"{key}/no_data"] = reason
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[marketer_report])
