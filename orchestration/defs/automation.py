"""Jobs and schedules.

- `nightly`: every asset, at 02:00 in C360_SCHEDULE_TZ for the day that just closed; activation
  runs at its end, after the marts it reads, blocked by any failing blocking check upstream.
- `activation`: the activation assets alone, on their own schedule (C360_ACTIVATION_CRON, default
  every six hours at :30) for the partition of the last finished nightly — retries what failed and
  picks up a platform that was down. It skips, naming the reason, when that nightly was unhealthy
  (failed, or a blocking check failed), so it never syncs from a refresh that stopped halfway.
- Both schedules (and the landing-file sensor, defs/sensors.py) start STOPPED, so opening the UI
  on a laptop launches nothing; a deployment turns them on with C360_SCHEDULES=on (or starts
  them by hand in the UI).
- `release_dead_runs_sensor`: every minute, marks runs whose process died failed and frees their
  `duckdb` pool slots, so a killed run never blocks the runs after it.
"""

import os
from collections.abc import Mapping

import dagster as dg

from orchestration.activation.health import last_nightly_health
from orchestration.int_setting import int_setting
from orchestration.run_guard import release_dead_runs
from orchestration.run_model import nightly_partitions, schedule_timezone
from orchestration.warehouse import engine


def automation_on(env: Mapping[str, str] | None = None) -> bool:
    """Whether schedules and the landing sensor start running: C360_SCHEDULES=on (also 1/true)."""
    env = os.environ if env is None else env
    return env.get("C360_SCHEDULES", "off").strip().lower() in {"on", "1", "true", "yes"}


def schedule_status(env: Mapping[str, str] | None = None) -> dg.DefaultScheduleStatus:
    """RUNNING in a deployment (C360_SCHEDULES=on), else STOPPED."""
    on = automation_on(env)
    return dg.DefaultScheduleStatus.RUNNING if on else dg.DefaultScheduleStatus.STOPPED


def warehouse_executor() -> dg.ExecutorDefinition:
    """How a run executes its steps, by warehouse engine: in one process, one after another, on
    DuckDB (one writer); on a server engine in parallel processes, at most C360_MAX_CONCURRENT
    steps at a time (default 2)."""
    if engine() == "duckdb":
        return dg.in_process_executor
    raw = os.environ.get("C360_MAX_CONCURRENT", "2")
    limit = int_setting("C360_MAX_CONCURRENT", raw, minimum=1, error=ValueError)
    return dg.multiprocess_executor.configured({"max_concurrent": limit})


nightly = dg.define_asset_job(
    name="nightly",
    selection=dg.AssetSelection.all(),
    partitions_def=nightly_partitions,
    executor_def=warehouse_executor(),
    description="Ingest every source (write-audit-publish), build dbt, activate audiences.",
)

# Runs at 02:00 (partition end + hour_offset) in the partitions' zone for the day that just closed.
nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightly, name="nightly_schedule", default_status=schedule_status()
)

activation = dg.define_asset_job(
    name="activation",
    selection=dg.AssetSelection.groups("activation"),
    partitions_def=nightly_partitions,
    executor_def=warehouse_executor(),
    description="Audience syncs alone, for the partition of the last healthy nightly.",
)


@dg.schedule(
    job=activation,
    cron_schedule=os.environ.get("C360_ACTIVATION_CRON", "30 */6 * * *"),
    execution_timezone=schedule_timezone(),
    default_status=schedule_status(),
    description="Activation between nightlies; skips when the last nightly was unhealthy.",
)
def activation_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    release_dead_runs(context.instance, released_by="activation_schedule")
    health = last_nightly_health(context.instance)
    if not health.healthy or health.partition_key is None:
        return dg.SkipReason(f"activation skipped: {health.reason}")
    return dg.RunRequest(partition_key=health.partition_key, tags={"c360/trigger": "schedule"})


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process died failed and frees their duckdb pool slots.",
)
def release_dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    released = release_dead_runs(context.instance, released_by="release_dead_runs_sensor")
    for run in released:
        context.log.warning(f"released {run.job_name} run {run.run_id} ({run.partition})")
    return dg.SkipReason(f"released {len(released)} run(s)" if released else "no dead runs")


defs = dg.Definitions(
    jobs=[nightly, activation],
    schedules=[nightly_schedule, activation_schedule],
    sensors=[release_dead_runs_sensor],
)
