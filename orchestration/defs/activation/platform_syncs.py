"""Diff-based activation: every sync in the syncs folder whose destination is a diff destination
of the registry (orchestration/activation/destinations/registry.py: campaign platforms, the
webhook, a Postgres table) — consent-checked audience, only changed rows sent, each row's outcome
recorded — and a check on the share of rows that did not end ok."""

import os

import dagster as dg

from orchestration.activation import diff_runner
from orchestration.activation.destinations import registry
from orchestration.activation.diff import MirrorGuardError
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.marts_guard import refuse_mixed_marts
from orchestration.activation.syncs import load_all_syncs
from orchestration.asset_args import keys, nightly_asset
from orchestration.contracts.rules_sql import quote_literal
from orchestration.defs.activation.audience import AUDIENCE_DEPS
from orchestration.defs.resources import Warehouse
from orchestration.engine import table_exists
from orchestration.run_model import as_of_from
from orchestration.warehouse import warehouse_pool

KEY = dg.AssetKey(["activation", "platform_syncs"])


def max_failed_share() -> float:
    """Share of sent rows allowed to end rejected, retryable or unknown in one run."""
    return float(os.environ.get("C360_SYNC_MAX_FAILED_SHARE", "0.05"))


@nightly_asset(
    key=KEY,
    sources=(__file__, diff_runner),
    # the diff removes the customer ids a merge retired (marts.customer_id_history)
    deps=[*AUDIENCE_DEPS, *keys("marts/customer_id_history")],
    group_name="activation",
    kinds={"duckdb", "api"},
)
def platform_syncs(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Diff-based syncs (every registry destination but file drops) from the syncs folder: per sync,
    the consent-checked audience is diffed against activation.sync_state and only creates, updates
    and removals are sent; a crashed run's plan is resumed first. Records contact_history (one row
    per sent, held-out or filtered person) and sync_runs."""
    as_of = as_of_from(context)
    diff_kinds = registry.kinds("diff")
    syncs = [s for s in load_all_syncs() if s.destination in diff_kinds]
    skip = (*registry.config_errors(), MirrorGuardError)
    outcomes, problems = [], []
    with warehouse.connection() as con:
        refuse_mixed_marts(con, as_of)
        for sync in syncs:
            destination = None
            try:
                destination = registry.build(sync, context.log.info)
                out = run_diff_sync(con, sync, as_of, context.run_id, destination,
                                    log=context.log.info)  # fmt: skip
            except skip as exc:
                problems.append(f"{sync.name}: {exc}")
                context.log.error(f"sync {sync.name} not run: {exc}")
                continue
            finally:
                if destination is not None and hasattr(destination, "close"):
                    destination.close()
            context.log.info(
                f"sync {sync.name}: planned {out.planned}, sent {out.sent}, ok {out.ok}, "
                f"rejected {out.rejected}, retryable {out.retryable}, unknown {out.unknown}, "
                f"held_out {out.held_out}, filtered {out.filtered} {out.filtered_by_reason}"
            )
            outcomes.append(out)
    if problems:
        raise dg.Failure(
            f"{len(problems)} sync(s) could not run (the others ran): " + "; ".join(problems)
        )
    sent = sum(o.sent for o in outcomes)
    failed = sum(o.rejected + o.retryable + o.unknown for o in outcomes)
    return dg.MaterializeResult(
        metadata={
            "syncs_run": len(outcomes),
            "rows_planned": sum(o.planned for o in outcomes),
            "rows_sent": sent,
            "rows_ok": sum(o.ok for o in outcomes),
            "rows_rejected": sum(o.rejected for o in outcomes),
            "rows_retryable": sum(o.retryable for o in outcomes),
            "rows_unknown": sum(o.unknown for o in outcomes),
            "rows_failed": failed,
            "rows_parked": sum(o.parked for o in outcomes),
            "rows_skipped_parked": sum(o.skipped_parked for o in outcomes),
            "rows_held_out": sum(o.held_out for o in outcomes),
            "rows_filtered": sum(o.filtered for o in outcomes),
            "failed_share": round(failed / sent, 4) if sent else 0.0,
            "syncs": dg.MetadataValue.json([o.as_dict() for o in outcomes]),
        }
    )


@dg.asset_check(
    asset=KEY,
    name="failed_row_share",
    pool=warehouse_pool(),
    # blocking: a run whose syncs failed more rows than allowed does not report success — its
    # downstream steps are skipped, and the nightly is unhealthy, so the activation schedule
    # skips until a nightly succeeds (the rows that failed are retried by the next run of the
    # sync: the diff resends every row whose last send did not end ok)
    blocking=True,
    description=(
        "Per sync in this run: the share of sent rows that ended rejected, retryable or unknown "
        "stays within C360_SYNC_MAX_FAILED_SHARE (default 5%); from activation.sync_runs. "
        "Blocking: a failure fails the run and stops what is downstream."
    ),
)
def failed_row_share(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    limit = max_failed_share()
    diff_kinds = registry.kinds("diff")
    with warehouse.connection(read_only=True) as con:
        has_runs = table_exists(con, "activation", "sync_runs")
        kinds = ", ".join(quote_literal(k) for k in diff_kinds) or "cast(null as varchar)"
        rows = (
            con.execute(
                "select sync_id, sent, rejected + retryable + unknown from activation.sync_runs "
                f"where run_id = ? and destination in ({kinds}) order by sync_id",
                [context.run.run_id],
            ).fetchall()
            if has_runs
            else []
        )
    shares = {sync: (failed / sent if sent else 0.0) for sync, sent, failed in rows}
    over = {sync: share for sync, share in shares.items() if share > limit}
    return dg.AssetCheckResult(
        passed=not over,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"failed share over {limit:.0%}: " + ", ".join(f"{s} {v:.1%}" for s, v in over.items())
            if over
            else f"every sync within {limit:.0%}"
        ),
        metadata={
            "max_failed_share": limit,
            "failed_share_by_sync": dg.MetadataValue.json(
                {s: round(v, 4) for s, v in shares.items()}
            ),
            "rows_sent": sum(r[1] for r in rows),
            "rows_failed": sum(r[2] for r in rows),
        },
    )
