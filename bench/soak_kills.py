"""Soak: consecutive nightlies on generated days with random SIGKILLs (seeded) against the same
nightlies run without interruption. Both homes read one landing folder that gains each day's
generated files before that day's runs.

Per night, the soaked home's `c360 run` is killed (its whole process group: an out-of-memory kill
or a container stop) at a random moment with probability --kill-share, up to --max-kills times,
then run to the end; every next run must release the dead one by itself. At the end raw, marts and
contact_history (without run metadata) must equal the uninterrupted home's, no run may be left
unfinished and no pool slot held. Figures: docs/benchmarks.md.

    .venv/bin/python bench/soak_kills.py --nights 20 --customers 200 --seed 7

Exits 1 when the homes differ or a run is left waiting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.warehouse_digest import table_digest  # noqa: E402

C360 = str(Path(sys.executable).parent / "c360")
# Columns that say who/when ran (and a contact's id, which hashes its run), not what was built.
RUN_COLUMNS = {
    "_loaded_at", "run_id", "sync_run_id", "recorded_at", "consent_snapshot_at", "published_at",
    "staged_at", "started_at", "finished_at", "duration_seconds", "contact_id", "_batch_id",
}  # fmt: skip
UNFINISHED = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def start_run(env: dict[str, str], as_of: dt.date) -> subprocess.Popen:
    """`c360 run` for `as_of` in its own process group (so a kill takes its dbt child with it, as
    an out-of-memory kill of the whole job or a container stop does); tests/e2e kill it too."""
    return subprocess.Popen(
        [C360, "run", "--as-of", as_of.isoformat(), "--log-level", "WARNING"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def run_to_end(env: dict[str, str], as_of: dt.date) -> None:
    proc = start_run(env, as_of)
    output = proc.communicate()[0]
    if proc.returncode != 0:
        raise SystemExit(f"run for {as_of} failed (exit {proc.returncode}):\n{output[-4000:]}")


def last_step(home: Path) -> str:
    """The step the latest run had started last (where a kill landed)."""
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    runs = instance.get_runs(limit=1)
    if not runs:
        return "(before the run was created)"
    steps = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START)
    return steps[-1].step_key if steps else "(before the first step)"


def state(warehouse: Path) -> dict[str, str]:
    """Order-independent digest of every raw and marts table and of contact_history."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where (table_schema in ('raw', 'marts') or (table_schema, table_name) = "
            "('activation', 'contact_history')) and table_type = 'BASE TABLE' order by all"
        ).fetchall()
        for schema, table in tables:
            out[f"{schema}.{table}"] = table_digest(con, schema, table, RUN_COLUMNS)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=20)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kill-share", type=float, default=0.7)
    parser.add_argument("--max-kills", type=int, default=2)
    parser.add_argument("--first-day", type=dt.date.fromisoformat, default=dt.date(2026, 11, 1))
    args = parser.parse_args()

    from demo.generator import generate
    from orchestration.paths import home_env

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="c360_soak_"))
    landing, reference, soaked = work / "landing", work / "reference", work / "soaked"
    ref_env = {**os.environ, **home_env(reference, landing)}
    soak_env = {**os.environ, **home_env(soaked, landing)}
    kills: list[tuple[dt.date, str]] = []
    started = time.time()
    try:
        for night in range(args.nights):
            as_of = args.first_day + dt.timedelta(days=night)
            generated = work / "generated"
            generate(args.customers, args.seed, as_of, generated, work / "truth", progress=None)
            shutil.copytree(generated, landing, dirs_exist_ok=True)
            shutil.rmtree(generated)
            run_to_end(ref_env, as_of)
            for _ in range(args.max_kills):
                if rng.random() >= args.kill_share:
                    break
                proc = start_run(soak_env, as_of)
                try:
                    proc.wait(timeout=rng.uniform(2.0, 45.0))
                except subprocess.TimeoutExpired:
                    where = last_step(soaked)
                    os.killpg(proc.pid, signal.SIGKILL)
                    kills.append((as_of, where))
                proc.communicate()
            run_to_end(soak_env, as_of)
            print(
                f"night {night + 1}/{args.nights} ({as_of}): "
                f"{sum(1 for d, _ in kills if d == as_of)} kill(s), {time.time() - started:.0f}s",
                flush=True,
            )
        got, want = state(soaked / "warehouse.duckdb"), state(reference / "warehouse.duckdb")
        differ = sorted(t for t in want.keys() | got.keys() if got.get(t) != want.get(t))
        instance = dg.DagsterInstance.from_config(str(soaked / "dagster"))
        unfinished = instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED))
        slots = instance.event_log_storage.get_concurrency_run_ids()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.nights} nightlies, {len(kills)} SIGKILLs, {time.time() - started:.0f}s")
    for as_of, where in kills:
        print(f"  killed {as_of} in {where}")
    print(f"tables compared: {len(want)}; differing: {differ or 'none'}")
    print(f"runs left unfinished: {len(unfinished)}; runs holding pool slots: {len(slots)}")
    return 1 if differ or unfinished or slots else 0


if __name__ == "__main__":
    sys.exit(main())
