"""Is the last nightly healthy enough to activate from? A scheduled activation run reads this and
skips (with the reason) when the last finished nightly failed or any of its blocking checks did —
so a refresh that stopped before the marts never leads to a sync from half-built data."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

NIGHTLY_JOB = "nightly"
_FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


@dataclass(frozen=True)
class NightlyHealth:
    """The verdict on the last finished nightly run (grain: one run)."""

    healthy: bool
    reason: str
    run_id: str | None = None
    partition_key: str | None = None


def last_nightly_health(instance: dg.DagsterInstance) -> NightlyHealth:
    """Healthy when the last finished `nightly` run succeeded and no blocking check evaluated in
    it failed (a failing non-blocking check, e.g. activation's failed-row share, does not stop
    the next activation: that run is what retries the rows)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=NIGHTLY_JOB, statuses=_FINISHED), limit=1
    )
    if not runs:
        return NightlyHealth(False, "no finished nightly run yet")
    run = runs[0]
    partition = run.tags.get("dagster/partition")
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
            False,
            f"last nightly run {run.run_id} ({partition}) ended {run.status.value}{checks}",
            run.run_id,
            partition,
        )
    return NightlyHealth(True, f"last nightly run {run.run_id} ({partition}) succeeded",
                         run.run_id, partition)  # fmt: skip
