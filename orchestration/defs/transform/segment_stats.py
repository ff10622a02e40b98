"""Per-run segment stats as asset metadata: size, entered, exited and holdout per segment, read
from audit.segment_stats (written by segment_membership's post-hook)."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["segments", "stats"])


@nightly_asset(
    key=KEY, deps=keys("marts/segment_membership"), group_name="segments", sources=(__file__,)
)
def segment_stats(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """audit.segment_stats for the run's as_of: one row per segment with members, entered, exited
    and holdout; the same figures as metadata (history: audit.segment_membership_history)."""
    as_of = as_of_from(context)
    with warehouse.connection(read_only=True) as con:
        rows = con.execute(
            "select segment_name, members, entered, exited, holdout from audit.segment_stats "
            "where as_of = ? order by segment_name",
            [as_of],
        ).fetchall()
    if not rows:
        raise dg.Failure(f"audit.segment_stats has no rows for as_of {as_of}: did dbt build run?")
    metadata: dict[str, dg.RawMetadataValue] = {
        "segments": len(rows),
        "dagster/row_count": len(rows),
        "stats": dg.MetadataValue.md(
            "| segment | members | entered | exited | holdout |\n| --- | --- | --- | --- | --- |\n"
            + "\n".join(f"| {n} | {m} | {e} | {x} | {h} |" for n, m, e, x, h in rows)
        ),
    }
    for name, members, entered, exited, holdout in rows:
        metadata[f"{name}/members"] = members
        metadata[f"{name}/entered"] = entered
        metadata[f"{name}/exited"] = exited
        metadata[f"{name}/holdout"] = holdout
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[segment_stats])
