"""File activation: every sync in dbt_project/syncs/ whose destination writes files (registry
style "file": file_drop)."""

from pathlib import Path

import dagster as dg

from orchestration.activation import runner
from orchestration.activation.destinations import registry
from orchestration.activation.marts_guard import refuse_mixed_marts
from orchestration.activation.runner import run_sync
from orchestration.activation.syncs import load_all_syncs
from orchestration.asset_args import nightly_asset
from orchestration.defs.activation.audience import AUDIENCE_DEPS
from orchestration.defs.resources import FileDropDestination, Warehouse
from orchestration.run_model import as_of_from


@nightly_asset(
    key=["activation", "file_drop"],
    sources=(__file__, runner),
    deps=AUDIENCE_DEPS,
    group_name="activation",
    kinds={"duckdb", "csv"},
)
def file_drop_syncs(
    context: dg.AssetExecutionContext, warehouse: Warehouse, file_drop: FileDropDestination
) -> dg.MaterializeResult:
    """Audience files for every file_drop sync (dbt_project/syncs/*.yml): consent-checked per row
    against consent_state; one contact_history row per customer per sync and as_of, one sync_runs
    row per sync per run."""
    as_of = as_of_from(context)
    outcomes = []
    with warehouse.connection() as con:
        refuse_mixed_marts(con, as_of)
        file_kinds = registry.kinds("file")
        for sync in load_all_syncs():
            if sync.destination not in file_kinds:
                continue
            out = run_sync(con, sync, as_of, context.run_id, Path(file_drop.base_dir))
            context.log.info(
                f"sync {sync.name}: planned {out.planned}, sent {out.sent}, ok {out.ok}, "
                f"held_out {out.held_out}, filtered {out.filtered} {out.filtered_by_reason}"
            )
            outcomes.append(out)
    failed = [o.sync_id for o in outcomes if o.status != "success"]
    if failed:
        raise dg.Failure(
            f"file_drop syncs failed: {', '.join(failed)} (rows recorded as retryable)"
        )
    return dg.MaterializeResult(
        metadata={
            "rows_sent": sum(o.sent for o in outcomes),
            "rows_ok": sum(o.ok for o in outcomes),
            "rows_failed": sum(o.rejected + o.retryable + o.unknown for o in outcomes),
            "rows_held_out": sum(o.held_out for o in outcomes),
            "rows_filtered": sum(o.filtered for o in outcomes),
            "syncs": dg.MetadataValue.json([o.as_dict() for o in outcomes]),
        }
    )
