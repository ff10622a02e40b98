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
DEFAULT_PARTITIONS_START = "2024-01-01"
SCHEDULE_HOUR = 2


def partitions_start() -> str:
    """The first day of the nightly partitions: `C360_PARTITIONS_START` (YYYY-MM-DD), else
    2024-01-01. A deployment sets it to its first day of data, so the UI's "filled" share counts
    only the days that could have run; `make ui` sets it to the warehouse's first night."""
    raw = os.environ.get("C360_PARTITIONS_START", "").strip()
    if not raw:
        return DEFAULT_PARTITIONS_START
    try:
        dt.date.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"C360_PARTITIONS_START={raw!r} is not a date: set it as YYYY-MM-DD"
        ) from None
    return raw


def schedule_timezone() -> str:
    return os.environ.get("C360_SCHEDULE_TZ", "UTC")


def daily_partitions(start: str) -> dg.DailyPartitionsDefinition:
    """One partition per logical day from `start`, closing at SCHEDULE_HOUR the next day."""
    return dg.DailyPartitionsDefinition(
        start_date=start,
        timezone=schedule_timezone(),
        hour_offset=SCHEDULE_HOUR,
        end_offset=1,
    )


nightly_partitions = daily_partitions(partitions_start())


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
