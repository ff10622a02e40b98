"""Time model: models never read the wall clock; the schedule is 02:00 in its zone, DST-safe."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

from orchestration.paths import dbt_project_dir

WALL_CLOCK = re.compile(
    r"\b(now\s*\(|current_date|current_timestamp|getdate\s*\(|sysdate|today\s*\()", re.I
)


def test_no_wall_clock_in_models_or_macros():
    offenders = []
    for path in list((dbt_project_dir() / "models").rglob("*.sql")) + list(
        (dbt_project_dir() / "macros").rglob("*.sql")
    ):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if WALL_CLOCK.search(line):
                offenders.append(f"{path}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_schedule_runs_once_a_day_at_two_in_its_zone_across_dst(monkeypatch):
    from dagster._utils.schedules import cron_string_iterator

    from orchestration.defs.automation import nightly_schedule

    tz = "Europe/Berlin"
    # The schedule's cron comes from the partitions: 02:00 daily; evaluated in the partition zone.
    assert nightly_schedule.cron_schedule == "0 2 * * *"
    for start in (
        dt.datetime(2026, 3, 27, tzinfo=ZoneInfo(tz)),
        dt.datetime(2026, 10, 23, tzinfo=ZoneInfo(tz)),
    ):
        ticks = cron_string_iterator(start.timestamp(), nightly_schedule.cron_schedule, tz)
        days = [next(ticks) for _ in range(5)]
        local_days = [d.astimezone(ZoneInfo(tz)).date() for d in days]
        assert local_days == sorted(set(local_days)) and len(local_days) == 5, "one run per day"
        assert all(d.astimezone(ZoneInfo(tz)).hour in (2, 3) for d in days)
