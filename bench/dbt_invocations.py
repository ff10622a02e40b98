"""Benchmark: time a nightly spends in dbt invocations against dbt's own time in its nodes.

Generates `--customers` persons and runs consecutive nightlies (`c360 run`, one process each) in a
fresh temporary home: night 1 at --as-of, each later night at the next day with that day's
generated files added to the landing folder (as bench/soak_kills.py does). Per night it reads

* the time in dbt invocations: each dbt step of the run from its start to its end in Dagster's
  event log (dagster-dbt's set-up, the dbt process, Dagster handling dbt's events);
* dbt's own time: the sum of `execution_time` over the nodes of each invocation (models, tests,
  hooks; from dbt's result events, orchestration/dbt_events.py), as the dbt asset records it in
  `$C360_HOME/logs/<run_id>.dbt.jsonl`, with how dbt parsed (partial or full, from dbt's log).
  For a checkout without that record (`--repo` of an older commit) the per-node times dbt prints
  in the run log are summed instead;

and prints their ratio (target <= 1.3). Exits 1 when a run fails, or with --check when a night
after the first is above the target or any of its invocations re-parsed the whole project.

    .venv/bin/python bench/dbt_invocations.py --customers 50000 --nights 2
    .venv/bin/python bench/dbt_invocations.py --repo /tmp/c360-before   # another checkout's code
    .venv/bin/python bench/dbt_invocations.py --without-erasures   # no erasure requests landed

Figures: docs/benchmarks.md ("dbt invocations per night").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.3
# A node result line dbt prints: "3 of 5 OK created sql view model a.b ... [OK in 0.02s]".
NODE_LINE = re.compile(
    r"^\d+ of \d+ (?!START).*\[\S*?(?:OK|PASS|WARN|ERROR|FAIL)\S* in ([0-9.]+)s\]"
)


@dataclass
class Night:
    as_of: dt.date
    run_id: str
    success: bool
    run_seconds: float  # the whole `c360 run` process
    dbt_steps: dict[str, float]  # dbt step key -> seconds, from Dagster's event log
    node_seconds: float  # dbt's own time in nodes over the night's invocations
    parses: list[str]  # per invocation: partial | full | unknown ("log": from the run log)

    @property
    def invocation_seconds(self) -> float:
        return sum(self.dbt_steps.values())

    @property
    def ratio(self) -> float:
        return self.invocation_seconds / self.node_seconds if self.node_seconds else float("inf")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def c360(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "c360"), *args],
        env=env, cwd=env.get("PYTHONPATH", REPO), capture_output=True, text=True,
    )  # fmt: skip


def dbt_steps(dagster_home: Path, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to the step's end for every dbt step of the run."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}
        for entry in instance.all_logs(run_id):
            kind = entry.dagster_event_type
            step = entry.step_key or ""
            if kind is None or not step.startswith("c360_dbt"):
                continue
            if kind == dg.DagsterEventType.STEP_START:
                starts[step] = entry.timestamp
            elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                ends[step] = entry.timestamp
    return {step: ends[step] - starts[step] for step in sorted(starts) if step in ends}


def latest_run_id(dagster_home: Path) -> str:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return instance.get_runs(limit=1)[0].run_id


def node_time(home: Path, run_id: str) -> tuple[float, list[str]]:
    """dbt's own node seconds and parse modes: from the run's .dbt.jsonl, else its run log."""
    record = home / "logs" / f"{run_id}.dbt.jsonl"
    if record.is_file():
        entries = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        return sum(e["node_seconds"] for e in entries), [e["parse"] for e in entries]
    text = (home / "logs" / f"{run_id}.log").read_text(errors="replace")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    seconds = sum(float(m.group(1)) for line in plain.splitlines() if (m := NODE_LINE.match(line)))
    parses = [
        "full" if "Unable to do partial parsing" in chunk else "partial"
        for chunk in plain.split("Running with dbt=")[1:]
    ]
    return seconds, [f"{p} (log)" for p in parses]


def run_night(env: dict[str, str], home: Path, as_of: dt.date) -> Night:
    started = time.monotonic()
    done = c360(env, "run", "--as-of", as_of.isoformat())
    seconds = time.monotonic() - started
    run_id = latest_run_id(home / "dagster")
    nodes, parses = node_time(home, run_id)
    night = Night(
        as_of, run_id, done.returncode == 0, seconds, dbt_steps(home / "dagster", run_id), nodes,
        parses,
    )  # fmt: skip
    if not night.success:
        log(f"run failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return night


def report(night: Night, number: int) -> None:
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in night.dbt_steps.items())
    log(
        f"night {number} ({night.as_of}): c360 run {night.run_seconds:.1f}s; "
        f"{len(night.dbt_steps)} dbt invocations {night.invocation_seconds:.1f}s ({steps}); "
        f"dbt's own node time {night.node_seconds:.1f}s; parse {', '.join(night.parses)}; "
        f"ratio {night.ratio:.2f}x (target <= {TARGET_RATIO}x)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 11, 21))
    parser.add_argument("--nights", type=int, default=2)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose code runs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    parser.add_argument(
        "--without-erasures",
        action="store_true",
        help="drop the generated erasure requests (the erasure step is not dbt: shorter nights)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 above the target")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from demo.generator import generate
    from orchestration.paths import home_env

    work = Path(tempfile.mkdtemp(prefix="c360_dbt_bench_"))
    home = work / "home"
    env = {**os.environ, **home_env(home), "PYTHONPATH": str(args.repo.resolve())}
    nights: list[Night] = []
    try:
        for number in range(1, args.nights + 1):
            as_of = args.as_of + dt.timedelta(days=number - 1)
            started = time.monotonic()
            generate(
                args.customers, args.seed, as_of, work / "generated", work / "truth", progress=None
            )
            if args.without_erasures:
                shutil.rmtree(work / "generated" / "consent" / "erasure_requests", True)
            shutil.copytree(work / "generated", home / "landing", dirs_exist_ok=True)
            shutil.rmtree(work / "generated")
            log(f"generated {args.customers:,} customers for {as_of} in "
                f"{time.monotonic() - started:.1f}s")  # fmt: skip
            nights.append(run_night(env, home, as_of))
            report(nights[-1], number)
            if not nights[-1].success:
                return 1
    finally:
        if args.keep:
            log(f"home kept: {home}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    later = nights[1:] or nights
    worst = max(n.ratio for n in later)
    full = [p for n in later for p in n.parses if p.startswith("full")]
    log(f"worst ratio after night 1: {worst:.2f}x; full parses after night 1: {len(full)}")
    return 1 if args.check and (worst > TARGET_RATIO or full) else 0


if __name__ == "__main__":
    raise SystemExit(main())
