"""Every `c360` error is one line on stderr naming what to do, with an exit code; no traceback.

`guarded(command, func, args)` runs a command handler and turns the errors a user can meet into
one line each: no warehouse yet (exit 1), no run for the asked as_of (1), the warehouse or the home
held by a run (3), out of memory (1), Ctrl-C (130). Anything else is a bug: its traceback goes to
`<C360_HOME>/logs/cli-errors.log` and the line names that file. Usage errors (argparse, also in
the `sources` sub-programs) are one line too, exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import duckdb

from orchestration.engine import Connection
from orchestration.paths import c360_home, warehouse_path


class CliError(Exception):
    """A failure the user can fix: `message` says how; `code` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def no_warehouse(path: Path) -> CliError:
    return CliError(
        f"no warehouse at {path}: run `c360 generate` and `c360 run` first "
        "(or point C360_HOME / C360_WAREHOUSE at an existing one)",
        1,
    )


def busy(path: Path) -> CliError:
    return CliError(
        f"the warehouse {path} is busy: a pipeline run is writing it; retry when it finishes", 3
    )


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


@contextmanager
def read_only_warehouse() -> Iterator[Connection]:
    """The warehouse opened for a CLI command's reads, on the engine of C360_DBT_TARGET:
    CliError (one line) when a DuckDB warehouse does not exist yet or a run holds its write
    lock."""
    from orchestration.warehouse import engine, server_warehouse, warehouse

    if engine() != "duckdb":
        # a session of its own, which writes nothing but its temp tables (the summary scores
        # identity against a truth file in one); Postgres refuses those in a read-only session
        with server_warehouse(read_only=False) as con:
            yield con
        return
    path = warehouse_path()
    if not path.exists():
        raise no_warehouse(path)
    try:
        with warehouse(read_only=True) as con:
            yield con
    except duckdb.IOException as exc:
        if is_lock_error(exc):
            raise busy(path) from exc
        raise


def errors_log() -> Path:
    return c360_home() / "logs" / "cli-errors.log"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _record_traceback(command: str, exc: BaseException) -> Path | None:
    """Append the traceback to <C360_HOME>/logs/cli-errors.log; None if it cannot be written."""
    path = errors_log()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(f"--- {dt.datetime.now().isoformat(timespec='seconds')} c360 {command}\n")
            fh.write("".join(traceback.format_exception(exc)))
    except OSError:
        return None
    return path


def _known(exc: BaseException) -> tuple[str, int] | None:
    """(one line, exit code) for errors a user can act on; None for a bug."""
    from orchestration.run_guard import RunBusy
    from orchestration.segments.preview import WarehouseBusy
    from orchestration.summary import NoRunForDate
    from orchestration.warehouse import WarehouseOutOfMemory

    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, NoRunForDate):
        return str(exc), 1
    if isinstance(exc, RunBusy):
        return f"not started: {exc}", 3
    if is_lock_error(exc):
        return str(busy(warehouse_path())), 3
    if isinstance(exc, WarehouseOutOfMemory):
        return str(exc), 1
    if isinstance(exc, WarehouseBusy):
        return str(exc), 3
    return None


def guarded(
    command: str, func: Callable[[argparse.Namespace], Any], args: argparse.Namespace
) -> int:
    """Run `func(args)`; print a known error as one line `c360 <command>: ...` and return its
    exit code; a bug: one line naming the log file holding its traceback, exit 1."""
    try:
        return int(func(args) or 0)
    except SystemExit as exc:  # a sub-program's argparse: its one-line usage error is printed
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except KeyboardInterrupt:
        print(f"c360 {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        known = _known(exc)
        if known is not None:
            message, code = known
            print(f"c360 {command}: {_one_line(message)}", file=sys.stderr)
            return code
        logged = _record_traceback(command, exc)
        where = f"; the traceback is in {logged}" if logged else ""
        print(
            f"c360 {command}: unexpected error {type(exc).__name__}: {_one_line(str(exc))}{where}"
            " (please report it)",
            file=sys.stderr,
        )
        return 1


def _usage_error(self: argparse.ArgumentParser, message: str) -> NoReturn:
    self.exit(2, f"{self.prog}: {_one_line(message)} (see `{self.prog} --help`)\n")


@contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """argparse usage errors as one line (no usage block) while a command runs, including the
    parsers of the `sources` sub-programs."""
    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _usage_error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]
