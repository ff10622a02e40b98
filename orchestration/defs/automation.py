"""Jobs and schedules: the `nightly` job over every asset, at 02:00 in C360_SCHEDULE_TZ."""

import dagster as dg

from orchestration.run_model import nightly_partitions

nightly = dg.define_asset_job(
    name="nightly",
    selection=dg.AssetSelection.all(),
    partitions_def=nightly_partitions,
    # DuckDB allows one writer: run steps in one process, one after another.
    executor_def=dg.in_process_executor,
    description="Ingest every source (write-audit-publish), build dbt, activate audiences.",
)

# Runs at 02:00 (partition end + hour_offset) in the partitions' zone for the day that just closed.
nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightly, name="nightly_schedule", default_status=dg.DefaultScheduleStatus.RUNNING
)

defs = dg.Definitions(jobs=[nightly], schedules=[nightly_schedule])
