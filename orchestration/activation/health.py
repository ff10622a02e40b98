"""Is the last nightly healthy enough to activate from? A scheduled activation run reads this and
skips (with the reason) unless the latest nightly — whatever its state — succeeded with every
blocking check passing: a nightly still running, killed mid-dbt or failed leaves marts of mixed
days, and nothing is sent from them."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from orchestration.run_guard import WORKER_TAG, worker_alive

NIGHTLY_JOB = "nightly"
_UNFINISHED = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}


@dataclass(frozen=True)
class NightlyHealth:
    """The verdict on the latest nightly run (grain: one run)."""

    healthy: bool
    reason: str
    run_id: str | None = None
    partition_key: str | None = None


def last_nightly_health(instance: dg.DagsterInstance) -> NightlyHealth:
    """Healthy only when the latest `nightly` run (of any state) succeeded and no blocking check
    evaluated in it failed (a failing non-blocking check, e.g. activation's failed-row share, does
    not stop the next activation: that run is what retries the rows). A run still under way, or
    one whose process died before it finished, is not healthy."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=NIGHTLY_JOB), limit=1)
    if not runs:
        return NightlyHealth(False, "no nightly run yet")
    run = runs[0]
    partition = run.tags.get("dagster/partition")
    label = f"latest nightly run {run.run_id} ({partition})"
    if run.status in _UNFINISHED:
        worker = run.tags.get(WORKER_TAG)
        state = (
            "died before finishing (its process is gone)"
            if worker and worker_alive(worker) is False
            else f"has not finished ({run.status.value})"
        )
        return NightlyHealth(False, f"{label} {state}", run.run_id, partition)
    failed_checks = sorted(
        data.asset_check_key.to_user_string()
        for record in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
        if (data := record.dagster_event.event_specific_data) is not None
        and not data.passed
        and data.blocking
    )
    if run.status != dg.DagsterRunStatus.SUCCESS or failed_checks:
        checks = f"; failed checks: {', '.join(failed_checks)}" if failed_checks else ""
        return NightlyHealth(
            False, f"{label} ended {run.status.value}{checks}", run.run_id, partition
        )
    return NightlyHealth(True, f"{label} succeeded", run.run_id, partition)
