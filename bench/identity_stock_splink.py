"""Stock unsupervised Splink against c360 on the second noise profile (person-only data).

    .venv/bin/python bench/identity_stock_splink.py --persons 3000 [--mode link|dedup|both]
        [--pipeline] [--diff]

Grain: one line per (task, matcher, threshold) with pairwise precision, recall and F1 — link:
cross-source pairs; dedup: pairs of records in one cluster (connected components of the links).

"Stock Splink" is Splink's own documented unsupervised recipe for person data of this kind
(Splink 5's FEBRL examples, docs/demos/examples/duckdb/febrl3 and febrl4), on the same fields
c360 sees, nothing tuned:

* comparisons: `NameComparison` on given name and surname with term-frequency adjustments,
  `DateOfBirthComparison` on the ISO date string, `ExactMatch` on the street number (term-frequency
  adjusted), `DamerauLevenshteinAtThresholds` [1, 2] on the postcode (term-frequency adjusted); the
  recipe compares no further location column ("strongly correlated with postcode");
* prediction blocking: given name + surname, the two swapped, date of birth, state + street,
  street number + street, postcode;
* prior: `estimate_probability_two_random_records_match` from exact name + date of birth (and the
  same with the names swapped) at recall 0.8; u by random sampling (seeded); m by EM on date of
  birth and on postcode, each without term frequencies;
* links at match probability 0.5 (the threshold the brief names) and 0.99 (the examples' own
  clustering threshold).

The recipe's social security number is left out: person-only data has none. Inputs are
lower-cased and trimmed as the examples' data already is; the street line is split into its
number and the rest. No field is folded or re-keyed beyond that.

Next to it, c360's trained model alone (orchestration/identity/training.fit on the same records,
its own threshold rule) and, with `--pipeline`, the product end to end (`c360 generate`, `c360 run`,
`c360 identity evaluate --truth`; bench/identity_person_only.pipeline). `--diff` classifies the
true pairs stock Splink links (p >= 0.5) and c360's model does not: never scored by c360's
blocking, scored below c360's threshold, or at/above it and refused by a guard; with each pair's
edits (second_noise_edits.csv).

Figures: docs/identity.md, *Stock Splink against c360*.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import identity_person_only as person_only  # noqa: E402

from demo import noise_second  # noqa: E402
from orchestration.identity import config as identity_config  # noqa: E402
from orchestration.identity import probabilistic, training  # noqa: E402

AS_OF = person_only.AS_OF
THRESHOLDS = (0.5, 0.99)


def stock_frame(con):
    """The records as the Splink examples' data: lower-case strings, street number apart."""
    return con.sql(
        """
        select
            record_key as unique_id,
            source as source_dataset,
            nullif(lower(trim(first_name)), '') as given_name,
            nullif(lower(trim(last_name)), '') as surname,
            strftime(date_of_birth, '%Y-%m-%d') as date_of_birth,
            nullif(regexp_extract(address_line1, '^\\s*([0-9]+)', 1), '') as street_number,
            nullif(trim(regexp_replace(lower(address_line1), '^\\s*[0-9]+', '')), '')
                as address_1,
            nullif(lower(trim(city)), '') as suburb,
            nullif(trim(postal_code), '') as postcode,
            nullif(lower(trim(region)), '') as state
        from intermediate.int_identity__records
        """
    ).df()


def stock_scores(con, cross: bool, u_max_pairs: float = 1e6) -> tuple[dict, float]:
    """Splink's documented unsupervised recipe: every pair its blocking scores → probability."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    df = stock_frame(con)
    started = time.monotonic()
    settings = SettingsCreator(
        link_type="link_only" if cross else "dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",
            block_on("date_of_birth"),
            block_on("state", "address_1"),
            block_on("street_number", "address_1"),
            block_on("postcode"),
        ],
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, invalid_dates_as_null=True
            ),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                term_frequency_adjustments=True
            ),
        ],
        retain_intermediate_calculation_columns=False,
    )
    db = DuckDBAPI()
    if cross:
        frames = [df[df.source_dataset == s].reset_index(drop=True) for s in ("crm", "loyalty")]
        linker = Linker([db.register(f) for f in frames], settings, log_level=logging.WARNING)
    else:
        linker = Linker(db.register(df), settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [
            block_on("given_name", "surname", "date_of_birth"),
            "l.given_name = r.surname and l.surname = r.given_name "
            "and l.date_of_birth = r.date_of_birth",
        ],
        recall=0.8,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=2)
    for rule in (block_on("date_of_birth"), block_on("postcode")):
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True
        )
    scored = linker.inference.predict(threshold_match_probability=0.01).as_pandas_dataframe()
    pairs = {
        tuple(sorted((a, b))): float(p)
        for a, b, p in zip(
            scored.unique_id_l, scored.unique_id_r, scored.match_probability, strict=True
        )
    }
    return pairs, time.monotonic() - started


def c360_scores(con) -> tuple[dict, set, object, float]:
    """c360's model trained on the records: every pair its blocking scores → p, and the links
    it makes (threshold rule, household guard, cluster check)."""
    records = probabilistic.candidates(con)
    config = identity_config.load().probabilistic
    started = time.monotonic()
    model = training.fit(records, config, AS_OF)
    if not model.accepted:
        raise SystemExit(f"c360 model refused: {model.reason}")
    linker, scratch = probabilistic._linker(records, model.model)
    try:
        scored = linker.inference.predict(threshold_match_probability=0.01)
        rows = scratch.execute(
            f"select unique_id_l, unique_id_r, match_probability from {scored.physical_name}"
        ).fetchall()
    finally:
        scratch.close()
    scores = {tuple(sorted((a, b))): float(p) for a, b, p in rows}
    links = probabilistic.predict(records, model.threshold, model.model)
    linked = set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))
    return scores, linked, model, time.monotonic() - started


def task_pairs(pairs: set, keys: list[str], cross: bool) -> set:
    """What a task scores: link, the cross-source pairs; dedup, the clusters' pairs."""
    if cross:
        return {p for p in pairs if person_only._src(p[0]) != person_only._src(p[1])}
    return person_only.clusters_to_pairs(pairs, keys)


def edits_of(truth_dir: Path) -> dict[str, str]:
    return {
        f"r|{r['source']}:{r['entity']}:{r['source_record_id']}": r["edits"]
        for r in csv.DictReader((truth_dir / noise_second.EDITS_FILE).open())
    }


def diff(stock: dict, c360: dict, linked: set, threshold: float, true: set, edits: dict) -> dict:
    """True pairs stock Splink links (p >= 0.5) and c360's model does not, by cause and edits."""
    causes: Counter = Counter()
    kinds: Counter = Counter()
    for pair in true:
        if stock.get(pair, 0.0) < 0.5 or pair in linked:
            continue
        p = c360.get(pair)
        if p is None:
            cause = "not scored by c360 blocking (or p < 0.01)"
        elif p < threshold:
            cause = f"scored {'>= 0.5' if p >= 0.5 else '< 0.5'}, under c360 threshold"
        else:
            cause = "at/above threshold, refused by a guard"
        causes[cause] += 1
        kinds[edits.get(pair[0]) or edits.get(pair[1]) or "?"] += 1
    return {"causes": dict(causes), "edits": dict(kinds.most_common(12))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--mode", choices=["link", "dedup", "both"], default="both")
    ap.add_argument("--pipeline", action="store_true", help="also c360 generate/run/evaluate")
    ap.add_argument("--diff", action="store_true", help="what stock links and c360 misses")
    ap.add_argument("--u-max-pairs", type=float, default=1e6)
    ap.add_argument("--max-edits", type=int, default=None, help="per duplicate (profile: 4)")
    args = ap.parse_args()
    for mode in ("link", "dedup") if args.mode == "both" else (args.mode,):
        tmp = person_only.generate_second(
            mode, args.persons, args.seed, args.max_edits, "c360_stock_"
        )
        con, truth = person_only.load(tmp / "landing", tmp / "truth")
        crm = next((tmp / "landing" / "crm" / "contacts").rglob("*.csv"))
        # the state (CRM only): the recipe blocks on it with the street
        con.execute("alter table intermediate.int_identity__records add column region varchar")
        con.execute(
            f"""update intermediate.int_identity__records as r set region = c.region
            from read_csv('{crm}', all_varchar=true) as c
            where r.record_key = 'r|crm:contacts:' || c.contact_id"""
        )
        keys = sorted(truth)
        cross = mode == "link"
        true = person_only.true_pairs(truth, cross)
        print(f"== {mode}: {len(keys):,} records, {len(true):,} true pairs "
              f"({args.persons} persons, seed {args.seed})")  # fmt: skip
        stock, secs = stock_scores(con, cross, args.u_max_pairs)
        for t in THRESHOLDS:
            got = task_pairs({k for k, p in stock.items() if p >= t}, keys, cross)
            p, r, f = person_only.score(got, true)
            print(f"  stock Splink   p >= {t:<5}: P {p:.4f} R {r:.4f} F1 {f:.4f} ({secs:.0f}s)")
        scores, linked, model, secs = c360_scores(con)
        p, r, f = person_only.score(task_pairs(linked, keys, cross), true)
        print(f"  c360 model     p >= {model.threshold:.3f}: P {p:.4f} R {r:.4f} F1 {f:.4f} "
              f"({secs:.0f}s)")  # fmt: skip
        if args.diff:
            stock_pairs = {k for k in true if stock.get(k, 0.0) >= 0.5}
            c360_pairs = {k for k in true if k in linked}
            print(f"  true pairs linked: stock {len(stock_pairs)}, c360 {len(c360_pairs)}, "
                  f"both {len(stock_pairs & c360_pairs)}")  # fmt: skip
            print("  stock-only:", json.dumps(
                diff(stock, scores, linked, model.threshold, true, edits_of(tmp / "truth"))))  # fmt: skip
            wrong = {k for k, p in stock.items() if p >= 0.5} - true
            print(f"  stock wrong links at 0.5: {len(wrong)}")
        if args.pipeline:
            out = person_only.pipeline(mode, args.persons, args.seed)
            print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
