"""How probabilistic matching's candidate pairs grow with the data, per configured blocking rule.

    .venv/bin/python bench/probabilistic_scale.py --persons 50000 200000 [--cap 500] [--seed 11]

For each scale: the CRM and loyalty records of the person_dedup profile (noise_second, as in
bench/identity_person_only.py) become the model's candidate records (probabilistic.candidates);
for every rule of the project's `vars.identity.probabilistic.blocking` the bench counts the pairs
the rule generates (sum over its blocks of n(n-1)/2, null keys excluded), the largest block, and
the pairs left if blocks above `--cap` records were skipped. Pairs are counted in SQL, not scored,
so the counts are exact and the run is cheap; "seconds" is the time to count. The last line gives
the ratio of total pairs between the largest and smallest scale against the ratio of records
(linear growth: the two are equal). Pairs found by several rules are counted once per rule, the
upper bound Splink's de-duplicated union stays under.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.identity_person_only import AS_OF, load  # noqa: E402
from orchestration.identity import config as identity_config  # noqa: E402
from orchestration.identity import probabilistic  # noqa: E402
from orchestration.sources import noise_second  # noqa: E402
from orchestration.warehouse import scratch  # noqa: E402


def rule_pairs(persons: int, seed: int, cap: int) -> tuple[int, list[dict]]:
    """Records at this scale and, per blocking rule, pairs, largest block and capped pairs."""
    tmp = Path(tempfile.mkdtemp(prefix="c360_pscale_"))
    noise = noise_second.SecondNoise(mode="dedup")
    noise_second.generate(persons, seed, AS_OF, tmp / "landing", tmp / "truth", noise,
                          progress=None)  # fmt: skip
    con, _ = load(tmp / "landing", tmp / "truth")
    records = probabilistic.candidates(con)
    con.close()
    rules = identity_config.load().probabilistic.blocking
    out = []
    with scratch() as db:
        db.register("records", records)
        present = set(records.column_names)
        for rule in rules:
            if not set(rule.columns) <= present:
                continue
            cols = list(rule.columns)
            not_null = " and ".join(f"{c} is not null" for c in cols)
            if rule.swapped:  # blocks (a, b) and (b, a) pair across; a = b pairs within
                a, b = cols
                blocks = f"""with k as (select {a} as a, {b} as b, count(*) as n from records
                    where {not_null} group by all)
                select case when l.a = l.b then l.n * (l.n - 1) // 2 else l.n * r.n end as n,
                    case when l.a = l.b then l.n else l.n + r.n end as size
                from k l join k r on l.a = r.b and l.b = r.a where l.a <= l.b"""
            else:
                blocks = (
                    f"select n * (n - 1) // 2 as n, n as size from (select count(*) as n "
                    f"from records where {not_null} group by {', '.join(cols)})"
                )
            started = time.monotonic()
            pairs, largest, capped = db.execute(
                f"""select coalesce(sum(n), 0), coalesce(max(size), 0),
                    coalesce(sum(n) filter (where size <= {int(cap)}), 0) from ({blocks})"""
            ).fetchone()
            out.append(
                {
                    "rule": rule.label,
                    "pairs": int(pairs),
                    "largest_block": int(largest),
                    "pairs_capped": int(capped),
                    "seconds": round(time.monotonic() - started, 2),
                }
            )
    return records.num_rows, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cap", type=int, default=500, help="skip blocks above this many records")
    args = ap.parse_args()
    totals = []
    for persons in args.persons:
        started = time.monotonic()
        n, rules = rule_pairs(persons, args.seed, args.cap)
        total = sum(r["pairs"] for r in rules)
        capped = sum(r["pairs_capped"] for r in rules)
        totals.append((n, total, capped))
        print(f"== {persons:,} persons: {n:,} records ({time.monotonic() - started:.0f} s)")
        for r in rules:
            print(
                f"  {r['rule']:<28} pairs {r['pairs']:>12,}  largest block "
                f"{r['largest_block']:>7,}  capped {r['pairs_capped']:>12,}  ({r['seconds']} s)"
            )
        print(f"  total pairs {total:,}  capped at {args.cap}: {capped:,}")
    if len(totals) > 1:
        (n0, t0, c0), (n1, t1, c1) = totals[0], totals[-1]
        print(
            f"records x{n1 / n0:.2f}: pairs x{t1 / max(t0, 1):.2f}, "
            f"capped pairs x{c1 / max(c0, 1):.2f}"
        )


if __name__ == "__main__":
    main()
