"""Run the nightly job in-process for one as_of (the CLI, the demo and the tests use this)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from orchestration.instance import ensure_instance


@dataclass(frozen=True)
class NightlyReport:
    run_id: str
    success: bool
    checks_passed: list[str]
    checks_failed: list[str]
    materialized: list[str]


def run_nightly(
    as_of: dt.date,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
) -> NightlyReport:
    """Execute the `nightly` job for partition `as_of` and report what passed and materialized."""
    from orchestration.definitions import defs

    if instance is None:
        ensure_instance()
        instance = dg.DagsterInstance.get()
    job = defs().resolve_job_def("nightly")
    result = job.execute_in_process(
        instance=instance,
        partition_key=as_of.isoformat(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
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
    )
