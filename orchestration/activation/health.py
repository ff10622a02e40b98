"""Is the last nightly healthy enough to activate from? A scheduled activation run reads this and
skips (with the reason) unless the latest nightly — whatever its state — built everything up to
the marts, every blocking check before activation passing: a nightly still running, killed mid-dbt
or failed before activation leaves marts of mixed days, and nothing is sent from them. A nightly
that failed only in activation (a platform down, too many failed rows) is what the activation
schedule is for: it retries from the same, complete marts."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from orchestration.run_guard import WORKER_TAG, worker_alive

NIGHTLY_JOB = "nightly"
# Steps of the activation assets and their checks (asset keys activation/...): their failure
# leaves the marts complete, so the next activation run may retry from them.
ACTIVATION_STEP_PREFIX = "activation__"
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
    """Healthy when the latest `nightly` run (of any state) succeeded, or failed only in
    activation steps (e.g. the blocking failed-row share: the next activation run is what retries
    those rows), and no blocking check before activation failed. A run still under way, one whose
    process died before it finished, or one that failed before activation is not healthy."""
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
        and data.asset_check_key.asset_key.path[0] != "activation"
    )
    failed_steps = sorted(
        {
            record.step_key
            for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
            if record.step_key
        }
    )
    before_activation = [s for s in failed_steps if not s.startswith(ACTIVATION_STEP_PREFIX)]
    only_activation_failed = (
        run.status == dg.DagsterRunStatus.FAILURE and failed_steps and not before_activation
    )
    if failed_checks or (run.status != dg.DagsterRunStatus.SUCCESS and not only_activation_failed):
        checks = f"; failed checks: {', '.join(failed_checks)}" if failed_checks else ""
        steps = f"; failed steps: {', '.join(before_activation)}" if before_activation else ""
        return NightlyHealth(
            False, f"{label} ended {run.status.value}{checks}{steps}", run.run_id, partition
        )
    if only_activation_failed:
        return NightlyHealth(
            True,
            f"{label} built the marts; only activation failed ({', '.join(failed_steps)}): "
            "activation retries from them",
            run.run_id,
            partition,
        )
    return NightlyHealth(True, f"{label} succeeded", run.run_id, partition)
