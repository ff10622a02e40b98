"""Sensors that watch the landing folder and failed runs.

- `landing_files_sensor`: when new landing files appear under `<landing>/<source>/<entity>/` of a
  contract, requests the `nightly` for today's partition (the one whose window holds now, as the
  time model defines it). Its cursor is the newest file modification time seen; the first tick
  only records that baseline (the files already there are the nightly schedule's). Starts STOPPED
  like the schedules (C360_SCHEDULES=on starts it). Files the live extractor writes during a run
  (`live-*`), hidden and `_`-prefixed files are not landings. With C360_LANDING_URL (S3) the
  objects are mirrored into the folder only during a run, so this sensor does not see them.
- `run_failure_alert`: one log line per failed run of this code location (job, run id,
  partition, failed steps; never the error text, which can quote a value), and the same as JSON
  to C360_FAILURE_WEBHOOK_URL when set (a Slack-style `text` field included).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx

from orchestration.contracts.model import all_source_contracts
from orchestration.defs.automation import automation_on, nightly
from orchestration.defs.resources import Warehouse
from orchestration.ingest.landing import LIVE_PREFIX, SUFFIXES
from orchestration.run_model import nightly_partitions

FAILURE_WEBHOOK_ENV = "C360_FAILURE_WEBHOOK_URL"
WEBHOOK_TIMEOUT_SECONDS = 10


def landing_files(landing: Path) -> dict[str, int]:
    """Landing files of every source contract: path → modification time (ns)."""
    found: dict[str, int] = {}
    for contract in all_source_contracts():
        root = landing / contract.source / contract.entity
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            name = path.name
            if name.startswith((".", "_", LIVE_PREFIX)) or path.suffix not in SUFFIXES:
                continue
            try:
                if path.is_file():
                    found[str(path)] = path.stat().st_mtime_ns
            except OSError:  # removed or unreadable between listing and stat
                continue
    return found


def todays_partition(now: dt.datetime) -> str:
    """The nightly partition whose window holds `now` (until 02:00 it is yesterday's)."""
    return nightly_partitions.get_partition_key_for_timestamp(now.timestamp())


@dg.sensor(
    job=nightly,
    minimum_interval_seconds=60,
    default_status=(
        dg.DefaultSensorStatus.RUNNING if automation_on() else dg.DefaultSensorStatus.STOPPED
    ),
    description=(
        "New landing files under a contract's folder → the nightly for today's partition. "
        "Cursor: newest file modification time seen; the first tick records it, requests nothing."
    ),
)
def landing_files_sensor(
    context: dg.SensorEvaluationContext, warehouse: Warehouse
) -> dg.SensorResult | dg.SkipReason:
    landing = Path(warehouse.landing_dir)
    if not landing.is_dir():
        return dg.SkipReason(f"no landing folder at {landing}")
    files = landing_files(landing)
    newest = max(files.values(), default=0)
    if context.cursor is None:
        return dg.SensorResult(
            skip_reason=f"baseline: {len(files)} landing file(s) already there",
            cursor=str(newest),
        )
    seen = int(context.cursor)
    new = sorted(p for p, mtime in files.items() if mtime > seen)
    if not new:
        return dg.SkipReason(f"no new landing files ({len(files)} seen)")
    partition = todays_partition(dt.datetime.now(dt.UTC))
    context.log.info(f"{len(new)} new landing file(s): requesting the nightly for {partition}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"landing:{partition}:{newest}",
                partition_key=partition,
                tags={"c360/trigger": "landing_files_sensor"},
            )
        ],
        cursor=str(newest),
    )


@dataclass(frozen=True)
class FailedRun:
    """What an alert names about a failed run: identifiers only, no error text."""

    job: str
    run_id: str
    partition: str | None
    failed_steps: list[str]

    def line(self) -> str:
        steps = ", ".join(self.failed_steps) or "none recorded"
        return (
            f"c360 run failed: job {self.job}, partition {self.partition or '-'}, "
            f"run {self.run_id}, failed step(s): {steps}"
        )

    def payload(self) -> dict:
        return {
            "event": "run_failure",
            "job": self.job,
            "run_id": self.run_id,
            "partition": self.partition,
            "failed_steps": self.failed_steps,
            "text": self.line(),
        }


def failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> FailedRun:
    """The failed run's job, partition and failed step keys, read from the instance."""
    steps = sorted(
        s.step_key
        for s in instance.get_run_step_stats(run.run_id)
        if s.status is not None and s.status.value == "FAILURE"
    )
    return FailedRun(run.job_name, run.run_id, run.tags.get("dagster/partition"), steps)


def post_alert(url: str, failed: FailedRun) -> str | None:
    """POST the alert as JSON; returns why it was not delivered, None when it was."""
    try:
        answer = httpx.post(url, json=failed.payload(), timeout=WEBHOOK_TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}"
    return None if answer.is_success else f"HTTP {answer.status_code}"


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "One log line per failed run (job, partition, run id, failed steps; no error text), "
        f"posted as JSON to {FAILURE_WEBHOOK_ENV} when set."
    ),
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    failed = failed_run(context.instance, context.dagster_run)
    context.log.error(failed.line())
    url = os.environ.get(FAILURE_WEBHOOK_ENV, "").strip()
    if url:
        problem = post_alert(url, failed)
        if problem:
            # the URL can hold a token: never logged
            context.log.warning(f"failure alert not delivered to {FAILURE_WEBHOOK_ENV}: {problem}")


defs = dg.Definitions(sensors=[landing_files_sensor, run_failure_alert])
