"""How probabilistic matching's candidate pairs grow with the data, per configured blocking rule.

    .venv/bin/python bench/probabilistic_scale.py --persons 50000 200000 [--cap 200] [--seed 11]
        [--score [--uncapped]] [--cc-seconds 6.3 14.3] [--data /tmp/pscale]

`--score` also runs identity's probabilistic step as the pipeline does, training included: in a
child process per scale and variant (`training.fit` on the records, then `probabilistic.predict`
at the fitted threshold), printing the pairs Splink generates (its own exact count, the union of
the rules), seconds for training and scoring, the child's peak RSS (ru_maxrss), the scratch
DuckDB's memory_limit as it opened (C360_DUCKDB_MEMORY_LIMIT), what the block-size cap skipped,
and link-level pairwise precision/recall/F1 against the generator's truth. `--uncapped` runs the
same without the cap after it (max_block_size set above any block through C360_DBT_VARS), for a
before/after. `--cc-seconds` (one per scale: the connected-components step alone at that scale,
from bench/identity_cc.py) prints the ratio identity ÷ connected components. `--data` keeps the
generated records between runs (generation dominates the wall time at 200k).

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
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.identity_person_only import AS_OF, load, score, true_pairs  # noqa: E402
from demo import noise_second  # noqa: E402
from orchestration.identity import blocking, probabilistic  # noqa: E402
from orchestration.identity import config as identity_config  # noqa: E402
from orchestration.warehouse import scratch  # noqa: E402


def data_dir(persons: int, seed: int, root: Path | None) -> Path:
    """The person_dedup records at this scale (generated once when `root` keeps them)."""
    tmp = (root or Path(tempfile.mkdtemp(prefix="c360_pscale_"))) / f"p{persons}_s{seed}"
    if not (tmp / "truth").exists():
        noise = noise_second.SecondNoise(mode="dedup")
        noise_second.generate(noise, persons, seed, AS_OF, tmp / "landing", tmp / "truth.tmp",
                              progress=None)  # fmt: skip
        (tmp / "truth.tmp").rename(tmp / "truth")
    return tmp


def rule_pairs(tmp: Path, cap: int) -> tuple[int, list[dict]]:
    """Records at this scale and, per blocking rule, pairs, largest block and capped pairs."""
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
            ).fetchall()[0]
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


def child(tmp: Path) -> dict:
    """Identity's probabilistic step on the records in `tmp`, training included (run in a child
    process: its peak RSS is the step's). The cap comes from vars (C360_DBT_VARS)."""
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    from orchestration.identity import training

    con, truth = load(tmp / "landing", tmp / "truth")
    records = probabilistic.candidates(con)
    con.close()
    config = identity_config.load().probabilistic
    out: dict = {"records": records.num_rows, "max_block_size": config.max_block_size}
    present = set(records.column_names)
    rules = [r for r in config.blocking if set(r.columns) <= present]
    started = time.monotonic()
    with scratch() as db:
        out["memory_limit"] = db.execute("select current_setting('memory_limit')").fetchall()[0][0]
        db.register("records_arrow", records)
        db.execute("create table records as select * from records_arrow")
        blocking.add_keys(db, "records", rules, config.max_block_size)
        counts = count_comparisons_from_blocking_rules(
            DuckDBAPI(db).register("records"),
            blocking_rules=[probabilistic.blocking_rule(r) for r in rules],
            link_type="dedupe_only",
            record_sample_proportion=1.0,
        )
    out["pairs"] = int(counts[-1]["cumulative_comparison_count"])
    out["count_seconds"] = round(time.monotonic() - started, 1)
    started = time.monotonic()
    model = training.fit(records, config, AS_OF)
    out["fit_seconds"] = round(time.monotonic() - started, 1)
    out["status"] = model.status if model.status == "accepted" else f"refused: {model.reason}"
    if model.status != "accepted":
        return out
    started = time.monotonic()
    links = probabilistic.predict(records, model.threshold, model.model)
    out["predict_seconds"] = round(time.monotonic() - started, 1)
    report = blocking.last_report()
    out["skipped"] = report.describe() if report else ""
    got = set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))
    p, r, f = score(got, true_pairs(truth, cross=False))
    out.update(threshold=round(model.threshold, 4), links=len(got), precision=round(p, 4),
               recall=round(r, 4), f1=round(f, 4))  # fmt: skip
    return out


def run_child(tmp: Path, cap: int) -> dict:
    """child() in a subprocess with this cap; adds its peak RSS (GB)."""
    env = {**os.environ, "C360_DBT_VARS": json.dumps(
        {"identity": {"probabilistic": {"max_block_size": cap}}})}  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(tmp)], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        return {"status": f"child failed ({status})", "output": stdout[-500:]}
    out = json.loads(stdout.strip().splitlines()[-1])
    out["peak_rss_gb"] = round(usage.ru_maxrss / 1024**2, 2)
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--cap", type=int, default=None,
                    help="skip blocks above this many records (default: the project's "
                         "max_block_size)")  # fmt: skip
    ap.add_argument("--score", action="store_true", help="train and score (child process)")
    ap.add_argument("--uncapped", action="store_true", help="with --score: also without the cap")
    ap.add_argument("--cc-seconds", type=float, nargs="*", default=[],
                    help="connected-components step seconds, one per scale")  # fmt: skip
    ap.add_argument("--data", type=Path, default=None, help="keep generated records here")
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    cap = args.cap or identity_config.load().probabilistic.max_block_size
    totals, scored = [], []
    for i, persons in enumerate(args.persons):
        started = time.monotonic()
        tmp = data_dir(persons, args.seed, args.data)
        n, rules = rule_pairs(tmp, cap)
        total = sum(r["pairs"] for r in rules)
        capped = sum(r["pairs_capped"] for r in rules)
        totals.append((n, total, capped))
        print(f"== {persons:,} persons: {n:,} records ({time.monotonic() - started:.0f} s)")
        for r in rules:
            print(
                f"  {r['rule']:<28} pairs {r['pairs']:>12,}  largest block "
                f"{r['largest_block']:>7,}  capped {r['pairs_capped']:>12,}  ({r['seconds']} s)"
            )
        print(f"  total pairs {total:,}  capped at {cap}: {capped:,}")
        if not args.score:
            continue
        cc = args.cc_seconds[i] if i < len(args.cc_seconds) else None
        for label, value in [(f"cap {cap}", cap)] + [("uncapped", 10**9)] * args.uncapped:
            out = run_child(tmp, value)
            scored.append((persons, label, out))
            seconds = out.get("fit_seconds", 0) + out.get("predict_seconds", 0)
            ratio = f"  identity ÷ CC {seconds / cc:.1f}x" if cc else ""
            print(f"  {label:<9} {json.dumps(out)}{ratio}")
    if len(totals) > 1:
        (n0, t0, c0), (n1, t1, c1) = totals[0], totals[-1]
        print(
            f"records x{n1 / n0:.2f}: pairs x{t1 / max(t0, 1):.2f}, "
            f"capped pairs x{c1 / max(c0, 1):.2f}"
        )
    for label in dict.fromkeys(lb for _, lb, _ in scored):
        rows = [o for _, lb, o in scored if lb == label and "pairs" in o]
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            t = [o.get("fit_seconds", 0) + o.get("predict_seconds", 0) for o in (a, b)]
            print(f"{label}: records x{b['records'] / a['records']:.2f}: Splink pairs "
                  f"x{b['pairs'] / max(a['pairs'], 1):.2f}, seconds x{t[1] / max(t[0], 1):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
