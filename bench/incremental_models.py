"""Benchmark: dbt's own time for the models the incremental mirrors changed, before and after,
on one kept home (e.g. `bench/nightly.py --keep`), in the same minutes.

Three variants, each a `dbt run` on its own copy of the home's warehouse at `--as-of`, run in
turn `--repeat` times (interleaved, so the machine's load falls on all of them alike):

- **before**: the readers of the staging views as they were (`--before-repo`, a checkout of the
  commit before the mirrors): customer_360, consent_state, int_segments__events,
  int_segments__orders;
- **incremental**: this checkout, the three mirrors (int_activity__*) and the same four readers,
  with nothing new in raw (a no-new-data night);
- **full refresh**: the same with DBT_FULL_REFRESH (`c360 run --full-refresh`).

Prints, per variant, the median over the repeats of the sum of dbt's node times
(run_results.json execution_time) and of each model's. Only dbt's node time is measured: start-up
and parse are the same for every variant.

    .venv/bin/python bench/incremental_models.py --home /tmp/kept/home --before-repo /tmp/c360-before

`--readers` names other readers, e.g. the identity models and campaign/KPI marts that moved from
the staging views to the mirrors later (docs/benchmarks.md, "Incremental models").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
READERS = ["customer_360", "consent_state", "int_segments__events", "int_segments__orders"]
MIRRORS = ["int_activity__web_events", "int_activity__orders", "int_activity__email_engagement"]


def dbt_run(
    repo: Path,
    warehouse: Path,
    models: list[str],
    as_of: str,
    target: Path,
    full_refresh: bool = False,
) -> dict[str, float]:
    """`dbt run --select models` of `repo`'s project on `warehouse`; node seconds per model."""
    env = {**os.environ, "C360_WAREHOUSE": str(warehouse), "C360_AS_OF": as_of}
    env.pop("DBT_FULL_REFRESH", None)
    if full_refresh:
        env["DBT_FULL_REFRESH"] = "true"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "run",
            "--profiles-dir",
            ".",
            "--select",
            *models,
            "--target-path",
            str(target),
            "--log-path",
            str(target),
        ],
        cwd=repo / "dbt_project",
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(done.stdout[-3000:])
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {
        r["unique_id"].split(".")[-1]: float(r["execution_time"])
        for r in results
        if r["unique_id"].startswith("model.")
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home after its nights")
    parser.add_argument("--before-repo", type=Path, required=True)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 11, 21))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--readers",
        nargs="+",
        default=READERS,
        help="the models that read the mirrors (default: %(default)s)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="c360_incremental_bench_"))
    variants = {
        "before": (args.before_repo, args.readers, False),
        "incremental": (REPO, MIRRORS + args.readers, False),
        "full refresh": (REPO, MIRRORS + args.readers, True),
    }
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    try:
        for name in variants:
            shutil.copyfile(args.home / "warehouse.duckdb", work / f"{name}.duckdb")

        def run(name: str) -> dict[str, float]:
            repo, models, full = variants[name]
            db, target = work / f"{name}.duckdb", work / f"target-{name}"
            return dbt_run(repo, db, models, args.as_of.isoformat(), target, full)

        for name in variants:  # a first, untimed run each
            run(name)
        for _ in range(args.repeat):
            for name in variants:
                timings[name].append(run(name))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    models = list(dict.fromkeys(m for runs in timings.values() for run in runs for m in run))
    header = ["model", *variants]
    print(" | ".join(header))
    for model in [*models, "total"]:
        cells = []
        for name in variants:
            values = [
                sum(run.values()) if model == "total" else run.get(model) for run in timings[name]
            ]
            values = [v for v in values if v is not None]
            cells.append(f"{statistics.median(values):.2f}" if values else "—")
        print(" | ".join([model, *cells]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
