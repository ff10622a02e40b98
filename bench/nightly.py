"""Benchmark: what a nightly costs — a full night, a night with no new data, a night with ~1 % new
data — next to a plain-DuckDB reference of the same main work (bench/nightly_reference.py).

In a fresh temporary home (orchestration.paths.home_env, never the developer's C360_HOME):

1. **full**: `generate(--customers, --seed, --as-of)` into the landing folder, then `c360 run`;
2. **no new data**: `c360 run --as-of <as_of + 1>` with no new landing file;
3. **1 %**: the generator's snapshot for `<as_of + 2>` (same seed) is written to a scratch folder
   and every 100th data row of each of its files (header kept; Parquet: every 100th row) lands
   under `dt=<as_of + 2>`: ~1 % of a night's rows, mostly existing records with the later day's
   values (changed records) plus the day's new ones; then `c360 run --as-of <as_of + 2>`.

Each night is one `c360 run` process, with dbt as a deployment runs it: through the warm server
(orchestration/dbt_warm.py), the bench's own on a socket in its work folder, which each run starts
when it begins and which is stopped when the bench ends (`--cold-dbt`: every dbt step a dbt
process of its own, C360_DBT_WARM=0). Per night: wall time, peak RSS (the largest resident set of
any process: the run's tree from `os.wait4`'s rusage, and each dbt command's own peak, which the
warm server's children report through C360_DBT_WARM_PEAKS),
and seconds per Dagster step (STEP_START to STEP_SUCCESS / STEP_FAILURE in the run's event log;
the in-process executor runs steps one at a time, so the wall time minus their sum is process
start-up, Dagster's own work and the summary). The reference runs first, in its own process, on
night 1's landing files as generated (a night's erasure step rewrites landing files). Prints one
rich table with the ratios full ÷ reference, no-new ÷ full and 1 % ÷ full against the issue's
targets (3×, 15 %, 25 %), seconds per stage and the slowest steps.

    .venv/bin/python bench/nightly.py --customers 50000 --seed 11
    .venv/bin/python bench/nightly.py --customers 200000 --steps 12 --keep
    .venv/bin/python bench/nightly.py --customers 300 --seed 7 --engine spark

`--engine spark` runs the nights on a local Spark Thrift Server started for the bench
(orchestration/engine/spark_server.py, `make spark`); the reference stays plain DuckDB, and the
server's own peak RSS is printed apart from the nights' (a process of its own).

`--json PATH` writes the figures (nights, reference, per-step seconds and peaks) as JSON;
`--slope-from PATH` reads such a file of a run at another scale and prints the cost slope:
each night's and stage's seconds ratio divided by the customers ratio (1.0 = linear, above it
worse than linear).

Exits 1 when a run fails. Figures: docs/benchmarks.md ("Nightly cost (issue 19)").
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EVERY = 100  # 1 row in 100: the "1 %" night
TARGETS = {"full ÷ reference": 3.0, "no-new ÷ full": 0.15, "1 % ÷ full": 0.25}
TARGET_PEAK_GB = 4.0
_END_EVENTS = ("STEP_SUCCESS", "STEP_FAILURE")


@dataclass
class Measured:
    """One measured process: a night (`c360 run`) or the reference."""

    name: str
    seconds: float
    peak_rss_bytes: int
    returncode: int
    steps: dict[str, float] = field(default_factory=dict)  # Dagster step key -> seconds
    run_id: str = ""
    # (unix time, largest RSS in the process tree) every RSS_EVERY seconds while it ran
    rss: list[tuple[float, int]] = field(default_factory=list)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)  # step -> start, end
    # dbt node -> seconds (execution_time of its slowest per invocation, summed)
    dbt_nodes: dict[str, float] = field(default_factory=dict)
    # candidate records identity/probabilistic_links scored (0: its last pairs re-used, the
    # candidates unchanged; None: not known). A "1 %" night costs ~100 s more at 1M when its
    # sample holds one new or changed candidate record, so the figure says which night it was.
    scored_records: int | None = None

    def step_peaks(self) -> dict[str, int]:
        """Per step, the largest sampled RSS while it ran (the in-process executor runs one
        step at a time, so a sample belongs to one step)."""
        return {
            step: max((b for t, b in self.rss if start <= t <= end), default=0)
            for step, (start, end) in self.windows.items()
        }

    @property
    def other_seconds(self) -> float:
        """Wall time outside every step: start-up, Dagster's own work, the summary."""
        return max(self.seconds - sum(self.steps.values()), 0.0)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def step_windows(
    events: Iterable[tuple[str | None, str, float]],
) -> dict[str, tuple[float, float]]:
    """(start, end) per step from (step_key, event type name, timestamp) triples of one run's
    event log: the step's first STEP_START to its last STEP_SUCCESS or STEP_FAILURE. Steps that
    never ended (a killed run) are left out; events without a step key are ignored."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for step, kind, timestamp in events:
        if not step:
            continue
        if kind == "STEP_START":
            starts.setdefault(step, timestamp)
        elif kind in _END_EVENTS:
            ends[step] = timestamp
    return {s: (starts[s], ends[s]) for s in sorted(starts) if s in ends}


def step_seconds(events: Iterable[tuple[str | None, str, float]]) -> dict[str, float]:
    """Seconds per step (step_windows: start to end)."""
    return {s: end - start for s, (start, end) in step_windows(events).items()}


RSS_EVERY = 0.5  # seconds between two samples of the process tree's resident sets
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def tree_rss(*roots: int) -> int:
    """The largest resident set (bytes) among `roots` and their descendants, from /proc (the same
    "largest process" figure as ru_maxrss, sampled); 0 where /proc is missing."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = set(roots), True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        grew, tree = bool(more), tree | more
    largest = 0
    for pid in tree:
        try:
            largest = max(largest, int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE)
        except (OSError, IndexError, ValueError):
            continue
    return largest


def stage_seconds(steps: dict[str, float]) -> dict[str, float]:
    """Step seconds summed per stage of the console progress (orchestration.progress.stage_of:
    `staged__crm__contacts` -> `ingestion: stage new landing files`), in first-step order."""
    from orchestration.progress import stage_of

    stages: dict[str, float] = {}
    for step, seconds in steps.items():
        stage = stage_of(step)
        stages[stage] = stages.get(stage, 0.0) + seconds
    return stages


def every_nth_line(lines: Iterable[str], every: int, header: bool) -> Iterator[str]:
    """The first line when `header`, then data lines 0, every, 2·every, ... of the rest."""
    iterator = iter(lines)
    if header:
        first = next(iterator, None)
        if first is None:
            return
        yield first
    for index, line in enumerate(iterator):
        if index % every == 0:
            yield line


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


def warm_server_pid(env: dict[str, str]) -> int | None:
    """The pid of the warm dbt server on the env's socket (its lock file), if one runs."""
    socket = env.get("C360_DBT_WARM_SOCKET")
    if not socket:
        return None
    try:
        return int(Path(f"{socket}.lock").read_text()) or None
    except (OSError, ValueError):
        return None


def stop_warm_server(env: dict[str, str]) -> None:
    """Stop the bench's own warm dbt server (SIGTERM; its children finish their commands)."""
    pid = warm_server_pid(env)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def measure(name: str, argv: list[str], env: dict[str, str], out: Path) -> Measured:
    """Run `argv` to completion (output to `out`) and take its wall time and peak RSS: of its
    process tree from the kernel's rusage for it (ru_maxrss: KiB on Linux), and of each dbt
    command the warm server ran for it (its children report their ru_maxrss to
    C360_DBT_WARM_PEAKS). The samples cover the run's tree and the server's."""
    started = time.monotonic()
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    peaks = out.with_suffix(".dbt-peaks.jsonl")
    peaks.unlink(missing_ok=True)
    env = {**env, "C360_DBT_WARM_PEAKS": str(peaks)}
    with out.open("w") as sink:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)

        def sample() -> None:
            while not done.wait(RSS_EVERY):
                roots = [proc.pid, *filter(None, [warm_server_pid(env)])]
                samples.append((time.time(), tree_rss(*roots)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # the bench stopped (Ctrl-C, SIGTERM): its run stops with it
            proc.terminate()
            proc.wait()
            raise
        finally:
            done.set()
            sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    dbt_peaks = [json.loads(line)["max_rss_bytes"]
                 for line in (peaks.read_text().splitlines() if peaks.exists() else [])]  # fmt: skip
    peak = max([usage.ru_maxrss * 1024, *dbt_peaks])
    return Measured(name, seconds, peak, proc.returncode, rss=samples)


def scored_records(metadata: dict[str, object]) -> int | None:
    """Candidate records the probabilistic step scored, from its materialization's metadata
    (LinkCounts: `records`, `reused`, `rescored_records`): 0 when it re-used its last pairs,
    the new and changed records when it scored only theirs, None without the counts."""
    if "records" not in metadata:
        return None
    if metadata.get("reused"):
        return 0
    rescored = metadata.get("rescored_records")
    return int(rescored if rescored is not None else metadata["records"])  # type: ignore[arg-type]


def probabilistic_metadata(dagster_home: Path, run_id: str) -> dict[str, object]:
    """The metadata values of identity/probabilistic_links' materialization in run `run_id`
    ({} when it did not materialize)."""
    import dagster as dg

    key = dg.AssetKey(["identity", "probabilistic_links"])
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            done = e.asset_materialization
            if done is not None and done.asset_key == key:
                return {k: v.value for k, v in done.metadata.items()}
    return {}


def dagster_steps(dagster_home: Path) -> tuple[str, dict[str, tuple[float, float]]]:
    """The latest run's id and its (start, end) per step, from the home's Dagster instance."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        events = (
            (e.step_key, e.dagster_event_type.value, e.timestamp)
            for e in instance.all_logs(run.run_id)
            if e.dagster_event_type is not None
        )
        return run.run_id, step_windows(events)


def sample_snapshot(snapshot: Path, landing: Path, every: int) -> int:
    """Copy every `every`-th data row of each file under `snapshot` to the same path under
    `landing` (CSV and JSON lines line by line, header kept; Parquet by row). Returns rows kept."""
    import pyarrow.parquet as pq

    kept = 0
    for source in sorted(p for p in snapshot.rglob("*") if p.is_file()):
        target = landing / source.relative_to(snapshot)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".parquet":
            table = pq.read_table(source)
            table = table.take(list(range(0, table.num_rows, every)))
            pq.write_table(table, target, compression="zstd")
            kept += table.num_rows
            continue
        header = source.suffix == ".csv"
        with source.open(newline="") as lines, target.open("w", newline="") as sink:
            for line in every_nth_line(lines, every, header):
                sink.write(line)
                kept += 1
        kept -= 1 if header else 0
    return kept


def c360_argv(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "c360"), *args]


def run_night(name: str, env: dict[str, str], home: Path, as_of: dt.date) -> Measured:
    night = measure(
        name,
        c360_argv("run", "--as-of", as_of.isoformat(), "--log-level", "WARNING"),
        env,
        home / f"bench-{name}.out",
    )
    night.run_id, night.windows = dagster_steps(home / "dagster")
    night.steps = {s: end - start for s, (start, end) in night.windows.items()}
    night.dbt_nodes = dbt_node_seconds(home / "logs" / f"{night.run_id}.dbt.jsonl")
    night.scored_records = scored_records(probabilistic_metadata(home / "dagster", night.run_id))
    status = "ok" if night.returncode == 0 else f"FAILED (exit {night.returncode})"
    log(f"{name} night ({as_of}): {night.seconds:.1f}s, peak RSS "
        f"{night.peak_rss_bytes / 1e9:.2f} GB, {status}")  # fmt: skip
    if night.returncode != 0:
        log((home / f"bench-{name}.out").read_text(errors="replace")[-3000:])
    return night


def dbt_node_seconds(timings: Path) -> dict[str, float]:
    """Seconds per dbt node over a run's invocations, from the slowest nodes each invocation
    recorded (orchestration/dbt_invocations.py: `<run_id>.dbt.jsonl`); {} without the file."""
    nodes: dict[str, float] = {}
    if not timings.is_file():
        return nodes
    for line in timings.read_text().splitlines():
        for node, seconds in json.loads(line).get("slowest", []) if line.strip() else []:
            nodes[node] = nodes.get(node, 0.0) + seconds
    return nodes


def render(nights: list[Measured], reference: Measured | None, top: int, title: str) -> None:
    """The results table (rich), the ratios against the targets and the slowest steps."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    # "scored": the candidate records probabilistic matching scored ("re-used": none changed)
    for column in ("run", "wall s", "peak RSS GB", "steps s", "outside steps s", "exit", "scored"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for m in [*nights, *([reference] if reference else [])]:
        scoring = (
            "—" if m.scored_records is None
            else "re-used" if m.scored_records == 0 else f"{m.scored_records:,}"
        )  # fmt: skip
        table.add_row(
            m.name, f"{m.seconds:.1f}", f"{m.peak_rss_bytes / 1e9:.2f}",
            f"{sum(m.steps.values()):.1f}" if m.steps else "—",
            f"{m.other_seconds:.1f}" if m.steps else "—", str(m.returncode), scoring,
        )  # fmt: skip
    console.print(table)

    by_name = {m.name: m for m in nights}
    full = by_name.get("full")
    ratios = Table(title="ratios")
    for column in ("ratio", "value", "target", "met"):
        ratios.add_column(column, justify="left" if column == "ratio" else "right")
    values = {
        "full ÷ reference": (full, reference),
        "no-new ÷ full": (by_name.get("no-new-data"), full),
        "1 % ÷ full": (by_name.get("one-percent"), full),
    }
    for label, (num, den) in values.items():
        if num is None or den is None:
            continue
        value = ratio(num.seconds, den.seconds)
        shown = f"{value:.2f}×" if label.startswith("full") else f"{value:.0%}"
        goal = TARGETS[label]
        target = f"≤ {goal:.0f}×" if label.startswith("full") else f"≤ {goal:.0%}"
        ratios.add_row(label, shown, target, "yes" if value <= goal else "no")
    peak = max(m.peak_rss_bytes for m in nights) / 1e9
    ratios.add_row("peak RSS (nights)", f"{peak:.2f} GB", f"≤ {TARGET_PEAK_GB:.0f} GB",
                   "yes" if peak <= TARGET_PEAK_GB else "no")  # fmt: skip
    console.print(ratios)

    per_night = [stage_seconds(m.steps) for m in nights]
    stages = list(dict.fromkeys(name for night in per_night for name in night))
    by_full = (lambda values: sorted(values, key=values.get, reverse=True)[:top]) if full else None
    tables = (
        ("seconds per stage (sum of its steps)", "stage", per_night, stages, "{:.1f}", 1),
        (f"slowest steps (s), top {top} of the full night", "step",
         [m.steps for m in nights], None, "{:.1f}", 1),
        (f"peak RSS by step (GB, sampled every {RSS_EVERY} s), top {top} of the full night",
         "step", [m.step_peaks() for m in nights], None, "{:.2f}", 1e9),
        (f"slowest dbt nodes (s), top {top} of the full night", "node",
         [m.dbt_nodes for m in nights], None, "{:.1f}", 1),
    )  # fmt: skip
    full_at = [m.name for m in nights].index("full") if full else None
    for title, first, values, rows, shown, unit in tables:
        if rows is None:  # the full night's largest, in its order
            rows = by_full(values[full_at]) if by_full else []
        table = Table(title=title)
        table.add_column(first)
        for m in nights:
            table.add_column(m.name, justify="right")
        for row in rows:
            table.add_row(row, *(shown.format(night.get(row, 0.0) / unit) for night in values))
        console.print(table)


def as_json(customers: int, seed: int, nights: list[Measured], reference: Measured | None) -> dict:
    """The figures of one bench run (what --json writes and --slope-from reads)."""

    def one(m: Measured) -> dict:
        return {"seconds": m.seconds, "peak_rss_bytes": m.peak_rss_bytes,
                "returncode": m.returncode, "steps": m.steps, "step_peaks": m.step_peaks(),
                "dbt_nodes": m.dbt_nodes, "scored_records": m.scored_records}  # fmt: skip

    return {
        "customers": customers,
        "seed": seed,
        "nights": {m.name: one(m) for m in nights},
        "reference": one(reference) if reference else None,
    }


def slopes(smaller: dict, larger: dict) -> dict[str, float]:
    """Per night (and `stage: <name>` of the full night): the seconds ratio larger ÷ smaller over
    the customers ratio; 1.0 is linear, above 1.0 worse than linear. Parts absent or taking no
    time at the smaller scale are left out."""
    scale = larger["customers"] / smaller["customers"]
    out: dict[str, float] = {}
    for name, night in larger["nights"].items():
        base = smaller["nights"].get(name)
        if base and base["seconds"] > 0:
            out[name] = night["seconds"] / base["seconds"] / scale
    if smaller.get("reference") and larger.get("reference"):
        out["reference"] = larger["reference"]["seconds"] / smaller["reference"]["seconds"] / scale
    full_small = smaller["nights"].get("full")
    full_large = larger["nights"].get("full")
    if full_small and full_large:
        small_stages = stage_seconds(full_small["steps"])
        for stage, seconds in stage_seconds(full_large["steps"]).items():
            if small_stages.get(stage, 0.0) >= 1.0:
                out[f"stage: {stage}"] = seconds / small_stages[stage] / scale
    return out


def render_slope(a: dict, b: dict) -> None:
    """The cost slope table between two bench runs at different scales."""
    from rich.console import Console
    from rich.table import Table

    smaller, larger = sorted((a, b), key=lambda f: f["customers"])
    table = Table(
        title=f"cost slope {smaller['customers']:,} → {larger['customers']:,} customers "
        "(seconds ratio ÷ customers ratio; ≤ 1.00 is linear or better)"
    )
    for column in ("part", "slope", "linear or better"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part, value in slopes(smaller, larger).items():
        table.add_row(part, f"{value:.2f}", "yes" if value <= 1.0 else "no")
    Console().print(table)


def night_parser(description: str, customers: int, customers_help: str) -> argparse.ArgumentParser:
    """The options of a bench that generates customers and runs nights in a temporary home:
    --customers (default `customers`), --seed, --as-of, --keep."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--customers", type=int, default=customers, help=customers_help)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 11, 21))
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    return parser


def temporary_home(prefix: str, warm_dbt: bool = True) -> tuple[Path, Path, dict[str, str]]:
    """A fresh work folder, the C360 home inside it and the environment of a process using that
    home (never the developer's C360_HOME; this checkout on PYTHONPATH). dbt runs through a warm
    server of the bench's own (a socket of its own under /tmp; stopped when the bench exits), as
    in a deployment, or with `warm_dbt` False as each step's own dbt process."""
    sys.path.insert(0, str(REPO))
    from orchestration.paths import home_env

    work = Path(tempfile.mkdtemp(prefix=prefix))
    home = work / "home"
    env = {**os.environ, **home_env(home), "PYTHONPATH": str(REPO),
           "C360_DBT_WARM": "1" if warm_dbt else "0",
           # /tmp, not the work folder: a socket's path is limited to 107 bytes
           "C360_DBT_WARM_SOCKET": f"/tmp/c360-bench-{os.getpid()}-{work.name}.sock"}  # fmt: skip
    atexit.register(stop_warm_server, env)
    return work, home, env


def main() -> int:
    parser = night_parser(__doc__.split("\n\n")[0], 50_000, "50000 | 200000 | 1000000")
    parser.add_argument("--steps", type=int, default=10, help="slowest steps to list")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference")
    parser.add_argument(
        "--cold-dbt", action="store_true",
        help="every dbt step its own dbt process (C360_DBT_WARM=0) instead of the warm server",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument(
        "--slope-from", type=Path, help="a --json file of another scale: print the cost slope"
    )
    parser.add_argument(
        "--engine", choices=("duckdb", "spark"), default="duckdb",
        help="the warehouse of the nights: spark starts a local Thrift Server (`make spark`)",
    )  # fmt: skip
    args = parser.parse_args()
    other = json.loads(args.slope_from.read_text()) if args.slope_from else None

    work, home, env = temporary_home("c360_nightly_bench_", warm_dbt=not args.cold_dbt)
    from demo.generator import generate

    nights: list[Measured] = []
    reference: Measured | None = None
    server = None
    try:
        if args.engine == "spark":
            from orchestration.engine.spark_server import SparkThriftServer

            # starts while the data is generated and the reference runs
            server = SparkThriftServer(work / "spark").start(wait=False)
            env.update({**server.env(), "C360_DBT_TARGET": "spark"})
        started = time.monotonic()
        result = generate(args.customers, args.seed, args.as_of, home / "landing",
                          home / "truth", progress=None)  # fmt: skip
        log(f"generated {args.customers:,} customers, {sum(result.rows.values()):,} rows for "
            f"{args.as_of} in {time.monotonic() - started:.1f}s")  # fmt: skip
        if not args.no_reference:
            reference = measure(
                "reference",
                [sys.executable, str(REPO / "bench" / "nightly_reference.py"),
                 "--landing", str(home / "landing"), "--as-of", args.as_of.isoformat(),
                 "--database", str(work / "reference.duckdb")],
                env, work / "reference.out",
            )  # fmt: skip
            log(f"reference: {reference.seconds:.1f}s, peak RSS "
                f"{reference.peak_rss_bytes / 1e9:.2f} GB, exit {reference.returncode}")  # fmt: skip
            print((work / "reference.out").read_text(errors="replace")[-4000:], flush=True)
        if server is not None:
            server.wait_ready()
            log(f"Spark Thrift Server ready on port {server.port}")
        nights.append(run_night("full", env, home, args.as_of))
        nights.append(run_night("no-new-data", env, home, args.as_of + dt.timedelta(days=1)))

        later = args.as_of + dt.timedelta(days=2)
        generate(args.customers, args.seed, later, work / "snapshot", work / "truth2",
                 progress=None)  # fmt: skip
        kept = sample_snapshot(work / "snapshot", home / "landing", SAMPLE_EVERY)
        shutil.rmtree(work / "snapshot")
        log(f"landed {kept:,} rows for {later} (1 in {SAMPLE_EVERY} of its snapshot)")
        nights.append(run_night("one-percent", env, home, later))

    finally:
        if server is not None:
            # the nights' peak RSS is the c360 process tree's; the server is a process of its own
            log(f"Spark Thrift Server peak RSS {server.peak_rss_bytes() / 1e9:.2f} GB")
            server.stop()
        if nights:
            engine = "" if args.engine == "duckdb" else f", on {args.engine}"
            render(nights, reference, args.steps,
                   f"nightly cost, {args.customers:,} customers, seed {args.seed}{engine}")  # fmt: skip
            figures = {**as_json(args.customers, args.seed, nights, reference),
                       "engine": args.engine}  # fmt: skip
            if args.json:
                args.json.write_text(json.dumps(figures, indent=1))
            if other:
                render_slope(other, figures)
        if args.keep:
            log(f"home kept: {home}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = [m.name for m in nights if m.returncode != 0]
    if reference is not None and reference.returncode != 0:
        failed.append("reference")
    return 1 if failed else 0


if __name__ == "__main__":
    # SIGTERM (`kill`) unwinds like Ctrl-C, so measure() stops the run it started
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    raise SystemExit(main())
