"""The time and run model every stage inherits.

One logical `as_of` date per run: the nightly daily partition key (Dagster), passed to dbt as
the `C360_AS_OF` env var (orchestration/dbt_invocations.py) and to the CLI as `--as-of`. The partition for day D closes at 02:00 on D+1
in C360_SCHEDULE_TZ (default UTC), which is when the nightly schedule runs it; Dagster evaluates
the cron in that zone, so daylight-saving days still get exactly one run.
"""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

OWNER = "team:c360-data"
PARTITIONS_START = "2024-01-01"
SCHEDULE_HOUR = 2


def schedule_timezone() -> str:
    return os.environ.get("C360_SCHEDULE_TZ", "UTC")


nightly_partitions = dg.DailyPartitionsDefinition(
    start_date=PARTITIONS_START,
    timezone=schedule_timezone(),
    hour_offset=SCHEDULE_HOUR,
    end_offset=1,
)


# One logical as_of per run: backfills launch one run per partition (day).
ONE_DAY_PER_RUN = dg.BackfillPolicy.multi_run(1)


def as_of_from(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dt.date:
    """The run's as_of: its partition key (checks read the run's partition tag)."""
    key = getattr(context, "partition_key", None) if context.has_partition_key else None
    if key is None:
        key = context.run.tags.get("dagster/partition")
    if key is None:
        raise dg.Failure(
            "c360 runs need an as_of: launch a partition (YYYY-MM-DD) of the nightly job"
        )
    return dt.date.fromisoformat(key)
