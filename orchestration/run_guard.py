"""Runs that die release what they held; two runs on one home never write at once.

A run of this instance (`c360 run`, the daemon, the UI) stamps itself with the process that runs
it (tag `c360/worker` = host:pid:start-ticks). A run that is still STARTING/STARTED/CANCELING but
whose process is gone (SIGKILL, out-of-memory kill, power loss) is *dead*: `release_dead_runs`
marks it failed with the reason and frees its `duckdb` pool slots, which Dagster keeps for a
killed run forever (every later run would wait on "Step blocked by limit for pool duckdb").
Finished runs that still hold slots are freed too (marking a run canceled does not free them).

`exclusive_home` is the one-writer rule for the CLI: a file lock on `<C360_HOME>/run.lock`, held
for the life of the process (the kernel drops it when the process dies, however it dies).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from orchestration.paths import c360_home

WORKER_TAG = "c360/worker"
_FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
_UNFINISHED = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class RunBusy(RuntimeError):
    """Another live run holds this home (its warehouse): one line saying which, and what to do."""


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), which
    tells a live process from a later one that reused its pid; None when there is no such pid,
    or it is a zombie (dead, not yet reaped: a killed step process waiting for init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def worker_tag(pid: int | None = None) -> str:
    """`host:pid:start-ticks` of this (or the given) process."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def worker_alive(tag: str) -> bool | None:
    """True/False for a worker on this host; None when it ran elsewhere (cannot be checked)."""
    host, _, rest = tag.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    return _start_ticks(int(pid_text)) == ticks


def stamp_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Record the process executing `run_id` on the run (idempotent within one process)."""
    run = instance.get_run_by_id(run_id)
    tag = worker_tag()
    if run is not None and run.tags.get(WORKER_TAG) != tag:
        instance.add_run_tags(run_id, {WORKER_TAG: tag})


@dataclass(frozen=True)
class ReleasedRun:
    """One run this call released (grain: one run)."""

    run_id: str
    job_name: str
    partition: str | None
    marked_failed: bool


def _describe(run: dg.DagsterRun) -> str:
    partition = run.tags.get("dagster/partition")
    return f"{run.job_name} run {run.run_id}" + (f" ({partition})" if partition else "")


def live_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Unfinished runs whose process is alive on this host, or that ran on another host."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED))
    return [
        r for r in runs if r.tags.get(WORKER_TAG) and worker_alive(r.tags[WORKER_TAG]) is not False
    ]


def release_dead_runs(instance: dg.DagsterInstance, released_by: str = "c360") -> list[ReleasedRun]:
    """Mark every dead run of this instance failed (naming the lost process) and free the pool
    slots of every run that can no longer use them. Safe to call at any time, from any process."""
    released: list[ReleasedRun] = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED)):
        tag = run.tags.get(WORKER_TAG)
        if not tag or worker_alive(tag) is not False:
            continue
        host, pid = tag.split(":")[:2]
        instance.report_run_failed(
            run,
            f"c360: the process running this run (pid {pid} on {host}) is gone — killed or out "
            f"of memory; marked failed by {released_by} and its pool slots freed",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(
            ReleasedRun(run.run_id, run.job_name, run.tags.get("dagster/partition"), True)
        )
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holders = storage.get_concurrency_run_ids()
        if holders:
            finished = instance.get_runs(
                filters=dg.RunsFilter(run_ids=list(holders), statuses=_FINISHED)
            )
            for run in finished:
                storage.free_concurrency_slots_for_run(run.run_id)
                if all(r.run_id != run.run_id for r in released):
                    released.append(
                        ReleasedRun(
                            run.run_id, run.job_name, run.tags.get("dagster/partition"), False
                        )
                    )
    return released


def _lock_path() -> Path:
    return c360_home() / "run.lock"


@contextmanager
def exclusive_home(what: str) -> Iterator[None]:
    """Hold `<C360_HOME>/run.lock` while a run writes this home; RunBusy names the holder."""
    path = _lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except ValueError:
                holder = {}
            raise RunBusy(
                f"another c360 run is writing {c360_home()} "
                f"(pid {holder.get('pid', '?')}: {holder.get('what', 'a run')}, started "
                f"{holder.get('started', '?')}); wait for it to finish, or stop it, then retry"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "what": what,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
        )
        handle.flush()
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock


def refuse_if_busy(instance: dg.DagsterInstance) -> None:
    """RunBusy when a live run of this instance (from the UI or the daemon) is under way."""
    for run in live_runs(instance):
        raise RunBusy(
            f"{_describe(run)} is still running (worker {run.tags[WORKER_TAG]}); "
            "wait for it to finish, or stop it, then retry"
        )
