"""What one dbt invocation of a run needs around it, so a night's invocations parse the project once.

dbt re-parses the whole project when its `--vars` change, and a per-run target folder starts
without the saved parse. So the nightly passes the run's values (as_of, run id) as env vars that
the macros read only while executing (dbt_project/macros/as_of.sql), and keeps dbt's saved parse
(`partial_parse.msgpack`) in the home between invocations and nights: each invocation starts from
the last one's parse and dbt re-parses only files that changed.

Each invocation also appends one JSON line to `<C360_HOME>/logs/<run_id>.dbt.jsonl`: its wall
time, dbt's own time in nodes (from dbt's event stream) and how dbt parsed (from dbt's own log) —
what `bench/dbt_invocations.py` reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestration.dbt_events import NodeTimes
from orchestration.paths import c360_home
from orchestration.run_logs import logs_dir

PARTIAL_PARSE = "partial_parse.msgpack"
AS_OF_ENV = "C360_AS_OF"
RUN_ID_ENV = "C360_RUN_ID"
# dbt's own env var for `--full-refresh` (dbt/cli/params.py): read by every dbt process the
# nightly starts, it rebuilds the incremental models from all of raw; not part of dbt's parse.
FULL_REFRESH_ENV = "DBT_FULL_REFRESH"
# The project's code digest (code_digest): the `reusable_table` materialization keeps a table
# only when it equals the one of the table's last build (dbt_project/macros/reusable_table.sql).
CODE_DIGEST_ENV = "C360_DBT_CODE_DIGEST"
# What dbt reads of the project besides the run's values: every file under these, and the
# versions of the packages that run it.
_CODE_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".py", ".md", ".json"}
_CODE_SKIP = {"target", "logs", "dbt_packages"}
_CODE_PACKAGES = ("dbt-core", "dbt-duckdb", "duckdb", "dbt-postgres", "dbt-spark")

# dbt's own log events that say how it parsed (dbt/events/core_types.proto names).
_PARSE_EVENTS = {
    "PartialParsingSkipParsing": "partial",  # saved parse reused, nothing changed
    "PartialParsingEnabled": "partial",  # saved parse reused, changed files re-parsed
    "UnableToPartialParse": "full",
}


def parse_cache() -> Path:
    """`<C360_HOME>/dbt_state/partial_parse.msgpack`: the last invocation's saved parse."""
    return c360_home() / "dbt_state" / PARTIAL_PARSE


@contextmanager
def run_values(values: Mapping[str, str]) -> Iterator[None]:
    """Set env vars for a dbt process started inside the block (it copies os.environ), then put
    the previous values back. The nightly runs its steps one after another in one process."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def code_digest(project_dir: Path) -> str:
    """sha256 of the dbt project's files (models, macros, seeds, tests, dbt_project.yml and the
    rest, outside target/, logs/ and dbt_packages/) and the dbt and engine package versions: what
    decides a model's table besides its compiled SQL and the rows it reads."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    for path in sorted(project_dir.rglob("*")):
        rel = path.relative_to(project_dir)
        if rel.parts[0] in _CODE_SKIP or not path.is_file() or path.suffix not in _CODE_SUFFIXES:
            continue
        h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    for package in _CODE_PACKAGES:
        try:
            h.update(f"{package}=={version(package)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{package}: none\0".encode())
    return h.hexdigest()


def full_refresh_values(full_refresh: bool) -> dict[str, str]:
    """The env vars (for run_values) that make a run's dbt invocations rebuild every incremental
    model in full (`c360 run --full-refresh`); none otherwise, so a value already in the
    environment (a deployment's DBT_FULL_REFRESH) is left alone."""
    return {FULL_REFRESH_ENV: "true"} if full_refresh else {}


def seed_partial_parse(target: Path) -> None:
    """Start the invocation in `target` from the home's saved parse, when there is one (else
    dagster-dbt copies the project's target/ parse, from `make manifest`)."""
    cached = parse_cache()
    if cached.is_file():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target / PARTIAL_PARSE)


def keep_partial_parse(target: Path) -> None:
    """Save the parse the invocation in `target` wrote as the home's (replaced atomically: a
    killed copy leaves the previous one; an unreadable one only costs dbt a full parse)."""
    written = target / PARTIAL_PARSE
    if not written.is_file():
        return
    cached = parse_cache()
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".tmp")
    shutil.copyfile(written, partial)
    os.replace(partial, cached)


@dataclass(frozen=True)
class InvocationTiming:
    """One dbt invocation of a run: wall time around it and dbt's own time in its nodes."""

    run_id: str
    step: str
    parse: str  # "partial" (saved parse reused), "full" or "unknown" (no dbt log)
    nodes: int  # models, tests, snapshots, seeds and hooks dbt executed
    node_seconds: float  # sum of the nodes' execution_time (dbt's result events)
    dbt_elapsed_seconds: float  # dbt's run, parse excluded (its FinishedRunningStats event)
    wall_seconds: float  # from calling dbt to its last event handled by Dagster
    # the SLOWEST nodes by execution_time: (unique_id, seconds), slowest first
    slowest: tuple[tuple[str, float], ...] = ()
    # executed nodes per resource type (model, test, unit_test, operation, ...)
    kinds: tuple[tuple[str, int], ...] = ()


def parse_mode(dbt_log: Path, invocation_id: str | None) -> str:
    """How dbt parsed in that invocation, from its JSON log (`unknown` without one)."""
    if not dbt_log.is_file():
        return "unknown"
    mode = "unknown"
    with dbt_log.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"Pars' not in line and "PartialPars" not in line:
                continue
            try:
                info = json.loads(line).get("info", {})
            except ValueError:
                continue
            if invocation_id and info.get("invocation_id") != invocation_id:
                continue
            found = _PARSE_EVENTS.get(info.get("name", ""))
            if found == "full":
                return "full"
            mode = found or mode
    return mode


SLOWEST = 10


def timing(
    times: NodeTimes, target: Path, run_id: str, step: str, wall_seconds: float
) -> InvocationTiming | None:
    """The invocation's timing from what its event stream said (`times`) and how dbt parsed
    (`target`/dbt.log); None when the stream reported no node (dbt did not run)."""
    if not times.seconds:
        return None
    ranked = sorted(times.seconds.items(), key=lambda item: -item[1])
    return InvocationTiming(
        run_id=run_id,
        step=step,
        parse=parse_mode(target / "dbt.log", times.invocation_id),
        nodes=len(times.seconds),
        node_seconds=round(sum(times.seconds.values()), 3),
        dbt_elapsed_seconds=round(times.elapsed or 0.0, 3),
        wall_seconds=round(wall_seconds, 3),
        slowest=tuple((uid, round(seconds, 3)) for uid, seconds in ranked[:SLOWEST]),
        kinds=tuple(sorted(Counter(uid.split(".")[0] for uid in times.seconds).items())),
    )


def timings_path(run_id: str) -> Path:
    return logs_dir() / f"{run_id}.dbt.jsonl"


def record(entry: InvocationTiming) -> Path:
    """Append the invocation's timing to the run's `<run_id>.dbt.jsonl`."""
    path = timings_path(entry.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(entry)) + "\n")
    return path


def read_timings(run_id: str) -> list[InvocationTiming]:
    """Every dbt invocation recorded for the run, in order."""
    path = timings_path(run_id)
    if not path.is_file():
        return []
    entries = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return [
        InvocationTiming(
            **{
                **e,
                "slowest": tuple(tuple(n) for n in e.get("slowest", ())),
                "kinds": tuple(tuple(k) for k in e.get("kinds", ())),
            }
        )
        for e in entries
    ]
