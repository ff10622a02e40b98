"""Where a run's dbt and Dagster output goes: `<C360_HOME>/logs/<run_id>.log`, not the console.

`c360 run` routes everything a run writes to stdout and stderr (dbt's re-emitted log lines, the
Dagster console logger, library warnings, subprocesses) into one log file per run, and keeps the
console for progress and the summary; `--verbose` leaves the output on the console as before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from orchestration.paths import c360_home


def logs_dir() -> Path:
    """`<C360_HOME>/logs`: one `<run_id>.log` per nightly run, and cli-errors.log."""
    return c360_home() / "logs"


def run_log_path(run_id: str) -> Path:
    return logs_dir() / f"{run_id}.log"


def _fd(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


@contextmanager
def console_stream() -> Iterator[TextIO]:
    """A stream on the console as it is now (a copy of stdout's descriptor), which stays on the
    console while `output_to` points descriptors 1 and 2 at a log; stdout itself when it has no
    descriptor (e.g. a test's capture, which `output_to` does not touch)."""
    fd = _fd(sys.stdout)
    if fd is None:
        yield sys.stdout
        return
    sys.stdout.flush()
    stream = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        yield stream
    finally:
        stream.close()


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send stdout and stderr, Python's and the process's descriptors 1 and 2 (so subprocesses
    and logging handlers bound to the real console too), to `path` (appended). Restored on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    old_out, old_err = sys.stdout, sys.stderr
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log = path.open("a", buffering=1, encoding="utf-8", errors="replace")
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        yield
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        log.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        log.close()
