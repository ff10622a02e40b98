"""Benchmark: the insight layer's share of a nightly (issue 17: it adds at most 25 % at 1M).

In a fresh temporary home (orchestration.paths.home_env, never the developer's C360_HOME):
`generate(--customers, --seed, --as-of)` with the `clv` profile (shop orders from the planted
BG/NBD + Gamma-Gamma process, so the CLV fit works on realistic repeat buying), then one
`c360 run` process. From the run's Dagster event log (bench/nightly.py's step timing: STEP_START
to STEP_SUCCESS / STEP_FAILURE; the in-process executor runs steps one at a time) it sums the
seconds of the steps of the `insight` asset group (CLV, send time, lead score, next-best action,
campaign lift and segment value, the insight view, the marketer report) and prints them per step,
the night's wall time, and

    insight ÷ (night − insight)

— what the insight layer adds to the nightly without it — against the target 0.25.

    .venv/bin/python bench/insight.py --customers 200000

Exits 1 when the night fails. Figures: docs/benchmarks.md ("Insight layer share of the nightly").
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.25


def insight_step_keys() -> frozenset[str]:
    """Step keys (`marts__customer_clv`) of every asset of the `insight` group."""
    import dagster as dg

    import orchestration.defs.insight as package

    keys: set[str] = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, dg.AssetsDefinition):
                for key, group in value.group_names_by_key.items():
                    if group == "insight":
                        keys.add("__".join(key.path))
    return frozenset(keys)


def main() -> int:
    sys.path.insert(0, str(REPO))
    from bench.nightly import log, night_parser, run_night, temporary_home

    parser = night_parser(__doc__.split("\n\n")[0], 200_000, "e.g. 50000 | 200000")
    args = parser.parse_args()

    work, home, env = temporary_home("c360_insight_bench_")
    from demo.generator import PROFILES, generate

    try:
        started = time.monotonic()
        result = generate(args.customers, args.seed, args.as_of, home / "landing",
                          home / "truth", progress=None, **PROFILES["clv"])  # fmt: skip
        log(f"generated {args.customers:,} customers, {sum(result.rows.values()):,} rows "
            f"(profile clv) in {time.monotonic() - started:.1f}s")  # fmt: skip
        night = run_night("full", env, home, args.as_of)
        if night.returncode != 0:
            # a failed night has no share to report; keep its home so its log can be read
            args.keep = True
            slowest = sorted(night.steps.items(), key=lambda kv: -kv[1])[:10]
            print(f"night FAILED after {night.seconds:.1f} s, peak RSS "
                  f"{night.peak_rss_bytes / 1e9:.2f} GB; no insight share. Slowest steps:")  # fmt: skip
            for key, seconds in slowest:
                print(f"  {key:<40}{seconds:>9.1f} s")
            out = home / "bench-full.out"
            if out.exists():
                print("".join(out.read_text().splitlines(keepends=True)[-40:]))
            return 1
        insight_keys = insight_step_keys()
        insight = {k: s for k, s in night.steps.items() if k in insight_keys}
        total = sum(insight.values())
        rest = night.seconds - total
        for key, seconds in sorted(insight.items(), key=lambda kv: -kv[1]):
            print(f"  {key:<40}{seconds:>9.1f} s")
        missing = sorted(insight_keys - set(insight))
        if missing:
            print(f"  not run: {', '.join(missing)}")
        print(
            f"{args.customers:,} customers, seed {args.seed}: night {night.seconds:.1f} s "
            f"(steps {sum(night.steps.values()):.1f} s), insight {total:.1f} s in "
            f"{len(insight)} steps, peak RSS {night.peak_rss_bytes / 1e9:.2f} GB"
        )
        share = total / rest if rest > 0 else float("inf")
        verdict = "within" if share <= TARGET else "OVER"
        print(f"insight ÷ (night − insight) = {share:.1%} ({verdict} the {TARGET:.0%} target)")
        return 0 if night.returncode == 0 else 1
    finally:
        if args.keep:
            log(f"home kept: {home}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
