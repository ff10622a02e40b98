"""Console progress of a nightly run (rich): a live bar in a terminal, and one line per stage as
it ends, with its steps and time, plus one line per failed step naming its error.

Fed by the run's Dagster events (`DagsterInstance.add_event_listener`), so it needs no change to
the assets. Stages are named from the step keys the definitions produce (see `stage_of`).
"""

from __future__ import annotations

import contextlib
import time
from functools import cache
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

_DONE = ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED")
_PREFIXES = (
    ("c360_dbt", "dbt build"),
    ("reference__", "reference data"),
    ("identity_state__", "identity"),
    ("identity__", "identity"),
    ("segments__", "segments"),
    ("activation__", "activation"),
)


def stage_of(step_key: str) -> str:
    """The stage a step belongs to, e.g. `staged__crm__contacts` → `ingestion: stage new landing
    files`; a step of no known stage is its own (`marts__customer_clv` → `marts/customer_clv`)."""
    if step_key.startswith("staged__"):
        if step_key.endswith("_meets_contract"):
            return "ingestion: contract checks"
        return "ingestion: stage new landing files"
    if step_key.endswith("_published_as_accounted"):
        return "ingestion: row accounting"
    for prefix, stage in _PREFIXES:
        if step_key.startswith(prefix):
            return stage
    if step_key in _source_entities():
        return "ingestion: publish to raw"
    return step_key.replace("__", "/")


@cache
def _source_entities() -> frozenset[str]:
    """The raw assets' step keys: one per source contract (`crm__contacts`)."""
    from orchestration.contracts.model import all_source_contracts

    return frozenset(c.id for c in all_source_contracts())


class NightlyProgress:
    """Context manager; pass `on_event` to `DagsterInstance.add_event_listener(run_id, ...)`."""

    def __init__(self, stream: TextIO, instance: Any | None = None) -> None:
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.instance = instance
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        self.task = self.bar.add_task("starting", total=None)
        self.stage: str | None = None
        self.stage_started = 0.0
        self.stage_steps = 0
        self.stage_failed = 0
        self.failed_steps: list[str] = []

    def __enter__(self) -> NightlyProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._end_stage()
        self.bar.stop()

    def line(self, text: str) -> None:
        """A permanent line above the bar."""
        self.console.print(text, markup=False)

    def on_event(self, entry: Any) -> None:
        """Dagster event listener; never lets a display problem break the run."""
        with contextlib.suppress(Exception):
            self._on_event(entry)

    def _on_event(self, entry: Any) -> None:
        event = entry.dagster_event
        if event is None:
            return
        kind = event.event_type_value
        if kind in ("RUN_START", "PIPELINE_START") and self.instance is not None:
            run = self.instance.get_run_by_id(entry.run_id)
            plan = self.instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            self.bar.update(self.task, total=len(plan.steps))
        elif kind == "STEP_START" and entry.step_key:
            stage = stage_of(entry.step_key)
            if stage != self.stage:
                self._end_stage()
                self.stage, self.stage_started = stage, time.monotonic()
                self.stage_steps = self.stage_failed = 0
            self.bar.update(self.task, description=stage)
        elif kind in _DONE and entry.step_key:
            self.bar.advance(self.task)
            self.stage_steps += 1
            if kind == "STEP_FAILURE":
                self.stage_failed += 1
                self.failed_steps.append(entry.step_key)
                error = getattr(event.event_specific_data, "error", None)
                message = (getattr(error, "message", "") or "").strip().splitlines()
                self.line(
                    f"  ✗ {entry.step_key} failed: {message[0] if message else 'see the log'}"
                )

    def _end_stage(self) -> None:
        if self.stage is None:
            return
        seconds = time.monotonic() - self.stage_started
        mark = "✗" if self.stage_failed else "✓"
        steps = f"{self.stage_steps} step{'s' if self.stage_steps != 1 else ''}"
        failed = f", {self.stage_failed} failed" if self.stage_failed else ""
        self.line(f"  {mark} {self.stage:<36} {steps + failed:<10} {seconds:6.1f}s")
        self.stage = None
