"""Run the nightly job in-process for one as_of (the CLI, the demo and the tests use this)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.identity.refusals import Refusals
from orchestration.instance import ensure_instance
from orchestration.run_guard import (
    WORKER_TAG,
    ReleasedRun,
    exclusive_home,
    refuse_if_busy,
    release_dead_runs,
    worker_tag,
)
from orchestration.run_logs import output_to


@dataclass(frozen=True)
class NightlyReport:
    run_id: str
    success: bool
    checks_passed: list[str]
    checks_failed: list[str]
    materialized: list[str]
    released: list[ReleasedRun]
    log_file: Path | None = None  # where the run's dbt and Dagster output went (None: console)
    # the refused links the graph-health step measured in this run (None: it did not run)
    refusals: Refusals | None = None


def run_nightly(
    as_of: dt.date,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
    progress: Callable[[str], None] | None = None,
    log_file: Path | None = None,
    on_event: Callable[[Any], None] | None = None,
) -> NightlyReport:
    """Execute the `nightly` job for partition `as_of` and report what passed and materialized.

    Holds the home's run lock for the whole run (RunBusy if another run holds it or a live run of
    the instance is under way), and first releases runs whose process died (killed, out of
    memory): they are marked failed and their pool slots freed, so this run never waits on them.

    `log_file`: the run's stdout and stderr (dbt, Dagster's console logger, warnings) go to this
    file instead of the console (orchestration/run_logs.py); `{run_id}` in its name is the run's
    id. `on_event` receives each Dagster event of the run as it happens (progress display).
    """
    from orchestration.definitions import defs

    if instance is None:
        ensure_instance()
        instance = dg.DagsterInstance.get()
    with exclusive_home(f"nightly {as_of}"):
        released = release_dead_runs(instance, released_by="c360 run")
        for gone in released:
            if progress:
                what = "marked failed (its process was gone), " if gone.marked_failed else ""
                progress(f"released {gone.job_name} run {gone.run_id} ({gone.partition}): "
                         f"{what}pool slots freed")  # fmt: skip
        refuse_if_busy(instance)
        job = defs().resolve_job_def("nightly")
        run_id = str(uuid.uuid4())  # known before the run starts: its listener and log file
        if on_event is not None:
            instance.add_event_listener(run_id, on_event)
        if log_file is not None:
            log_file = Path(str(log_file).replace("{run_id}", run_id))
        with output_to(log_file) if log_file is not None else nullcontext():
            result = job.execute_in_process(
                instance=instance,
                partition_key=as_of.isoformat(),
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
                tags={WORKER_TAG: worker_tag()},
                run_id=run_id,
            )
    evaluations = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return NightlyReport(
        run_id=result.run_id,
        success=result.success,
        checks_passed=sorted(c.asset_check_key.to_user_string() for c in evaluations if c.passed),
        checks_failed=sorted(
            c.asset_check_key.to_user_string() for c in evaluations if not c.passed
        ),
        materialized=sorted(
            e.asset_key.to_user_string()
            for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
        ),
        released=released,
        log_file=log_file,
        refusals=_measured_refusals(evaluations),
    )


# the graph-health step's check that carries its refusal count (defs/transform/identity_health.py)
_REFUSALS_CHECK = "identity_state/graph_health:refused_links_share"


def _measured_refusals(evaluations: list) -> Refusals | None:
    """The refusals the run's graph-health step measured, from its check's metadata: the summary
    prints them without counting the links again."""
    for e in evaluations:
        if e.asset_check_key.to_user_string() == _REFUSALS_CHECK:
            meta = e.metadata
            if "candidate_links" in meta and "refused_by_limit" in meta:
                by_limit = meta["refused_by_limit"].value
                return Refusals(int(meta["candidate_links"].value),
                                {str(k): int(v) for k, v in by_limit.items()})  # fmt: skip
    return None
