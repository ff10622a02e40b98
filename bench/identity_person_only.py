"""Person-only identity on the second noise profile: c360's trained model against a stock
unsupervised Splink 5 pipeline on the same fields (docs/identity.md, *Measured: the second noise
profile*).

    .venv/bin/python bench/identity_person_only.py --persons 5000 [--mode link|dedup|both]
        [--pipeline] [--min-precision 0.995]

Model level (always): the CRM and loyalty records of `c360 generate --profile person_link` (or
`person_dedup`) are read into an in-memory warehouse as `int_identity__records`; c360's model is
trained on them (orchestration/identity/training.py: the project's `vars.identity.probabilistic`)
and scores pairs at its own threshold; the stock pipeline is Splink's documented recipe (name,
date, postcode and string comparisons with term-frequency adjustments, prior from deterministic
rules, u by random sampling, EM on two blocking rules, links at p >= 0.5 (link) or clusters at
p >= 0.5 (dedup)). `--pipeline` also runs the product end to end in a temp home: `c360 generate`,
`c360 run`, `c360 identity evaluate --truth` (dedup with `sources_with_duplicates:
[crm__contacts]` in C360_DBT_VARS, nothing else changed).

Metrics: link, pairwise precision/recall/F1 of cross-source pairs; dedup, pairwise
precision/recall/F1 of the clusters (pairs of records in one cluster vs one person).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo import noise_second  # noqa: E402
from orchestration.identity import config as identity_config  # noqa: E402
from orchestration.identity import probabilistic, training  # noqa: E402
from tests.identity_inputs import create_matching_inputs  # noqa: E402

AS_OF = dt.date(2026, 11, 21)


def load(landing: Path, truth_dir: Path) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """An in-memory warehouse holding int_identity__records (as the pipeline builds it for
    these two contracts) and the truth (record_key → person)."""
    con = duckdb.connect()
    create_matching_inputs(con)
    crm = next((landing / "crm" / "contacts").rglob("*.csv"))
    con.execute(
        f"""insert into intermediate.int_identity__records select 'r|crm:contacts:' ||
        contact_id, 'crm', first_name, last_name, null, null, try_cast(date_of_birth as date),
        postal_code, address_line1, city from read_csv('{crm}', all_varchar=true)"""
    )
    loyalty = list((landing / "loyalty" / "members").rglob("*.csv"))
    if loyalty:
        con.execute(
            f"""insert into intermediate.int_identity__records select 'r|loyalty:members:' ||
            member_id, 'loyalty', first_name, last_name, null, null, try_cast(birthday as date),
            postal_code, address_line1, city from read_csv('{loyalty[0]}', all_varchar=true)"""
        )
    truth = {
        f"r|{r['source']}:{r['entity']}:{r['source_record_id']}": r["person_id"]
        for r in csv.DictReader((truth_dir / "ground_truth.csv").open())
    }
    return con, truth


def _src(key: str) -> str:
    return key.split(":", 1)[0]


def true_pairs(truth: dict[str, str], cross: bool) -> set[tuple[str, str]]:
    by = defaultdict(list)
    for k, p in truth.items():
        by[p].append(k)
    return {
        tuple(sorted(pair))
        for keys in by.values()
        for pair in itertools.combinations(keys, 2)
        if not cross or _src(pair[0]) != _src(pair[1])
    }


def score(predicted: set, true: set) -> tuple[float, float, float]:
    tp = len(predicted & true)
    p = tp / len(predicted) if predicted else 1.0
    r = tp / len(true) if true else 1.0
    return p, r, (2 * p * r / (p + r) if tp else 0.0)


def clusters_to_pairs(pairs: set[tuple[str, str]], keys: list[str]) -> set[tuple[str, str]]:
    """Connected components of `pairs`, returned as all within-component pairs."""
    parent = {k: k for k in keys}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups = defaultdict(list)
    for k in keys:
        groups[find(k)].append(k)
    return {tuple(sorted(p)) for g in groups.values() for p in itertools.combinations(g, 2)}


def c360_model(con, keys, cross: bool, min_precision: float | None = None):
    records = probabilistic.candidates(con)
    config = identity_config.load().probabilistic
    if min_precision is not None:  # what the threshold rule's floor costs or buys
        config = dataclasses.replace(config, min_precision=min_precision)
    started = time.monotonic()
    model = training.fit(records, config, AS_OF)
    if not model.accepted:
        return None, model
    links = probabilistic.predict(records, model.threshold, model.model)
    pairs = set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))
    if not cross:
        pairs = clusters_to_pairs(pairs, keys)
    else:
        pairs = {p for p in pairs if _src(p[0]) != _src(p[1])}
    return (pairs, time.monotonic() - started), model


def stock_splink(con, keys, cross: bool):
    """Splink 5's documented unsupervised recipe on the same fields."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    df = con.sql(
        """
        select record_key as unique_id, source as source_dataset,
            lower(first_name) as given_name, lower(last_name) as surname,
            strftime(date_of_birth, '%Y-%m-%d') as date_of_birth,
            nullif(regexp_extract(address_line1, '^[0-9]+'), '') as street_number,
            nullif(trim(regexp_replace(lower(address_line1), '^[0-9]+', '')), '') as address_1,
            lower(city) as suburb, postal_code as postcode
        from intermediate.int_identity__records
        """
    ).df()
    started = time.monotonic()
    settings = SettingsCreator(
        link_type="link_only" if cross else "dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
            cl.DamerauLevenshteinAtThresholds("street_number", [1]),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
            cl.LevenshteinAtThresholds("postcode", [1, 2]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("postcode", "street_number"),
            block_on("date_of_birth"),
            "l.given_name = r.surname and l.surname = r.given_name",
        ],
        retain_intermediate_calculation_columns=False,
    )
    if cross:
        frames = [df[df.source_dataset == s].reset_index(drop=True) for s in ("crm", "loyalty")]
    else:
        frames = [df]
    db = DuckDBAPI()
    linker = Linker([db.register(f) for f in frames] if cross else db.register(df), settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth"), block_on("surname", "postcode")],
        recall=0.7,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname"))
    scored = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    pairs = {
        tuple(sorted((a, b))) for a, b in zip(scored.unique_id_l, scored.unique_id_r, strict=True)
    }
    if not cross:
        pairs = clusters_to_pairs(pairs, keys)
    return pairs, time.monotonic() - started


def pipeline(mode: str, persons: int, seed: int) -> dict:
    """c360 generate → c360 run → c360 identity evaluate --truth in a temp home."""
    home = Path(tempfile.mkdtemp(prefix=f"c360_person_{mode}_"))
    env = {**os.environ, "C360_HOME": str(home)}
    for k in ("C360_WAREHOUSE", "C360_LANDING_DIR", "DAGSTER_HOME", "C360_DBT_VARS"):
        env.pop(k, None)
    if mode == "dedup":
        env["C360_DBT_VARS"] = json.dumps(
            {"identity": {"sources_with_duplicates": ["crm__contacts"]}}
        )
    c360 = [str(ROOT / ".venv" / "bin" / "c360")]

    def run(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run(c360 + list(a), env=env, cwd=ROOT, capture_output=True, text=True)

    profile = "person_link" if mode == "link" else "person_dedup"
    out = run("generate", "--profile", profile, "--customers", str(persons), "--seed", str(seed),
              "--as-of", AS_OF.isoformat())  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    started = time.monotonic()
    out = run("run", "--as-of", AS_OF.isoformat())
    seconds = time.monotonic() - started
    summary = out.stdout[-3000:]
    out = run("identity", "evaluate", "--truth", str(home / "truth" / "ground_truth.csv"))
    return {"home": str(home), "run_seconds": round(seconds, 1), "run": summary,
            "evaluate": out.stdout + out.stderr[-1000:]}  # fmt: skip


def generate_second(mode: str, persons: int, seed: int, max_edits: int | None, prefix: str) -> Path:
    """A new temp folder holding landing/ and truth/ of the second noise profile in `mode`
    ("link" or "dedup"), `max_edits` per duplicate when given (else the profile's)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    noise = noise_second.SecondNoise(mode=mode)
    if max_edits:
        noise = dataclasses.replace(noise, max_edits=max_edits)
    noise_second.generate(noise, persons, seed, AS_OF, tmp / "landing", tmp / "truth",
                          progress=None)  # fmt: skip
    return tmp


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--mode", choices=["link", "dedup", "both"], default="both")
    ap.add_argument("--pipeline", action="store_true")
    ap.add_argument("--no-stock", action="store_true")
    ap.add_argument(
        "--max-edits", type=int, default=None, help="edits per duplicate (profile default: 4)"
    )
    ap.add_argument(
        "--min-precision", type=float, default=None,
        help="the threshold rule's expected-precision floor (default: the project's)",
    )  # fmt: skip
    args = ap.parse_args()
    for mode in ("link", "dedup") if args.mode == "both" else (args.mode,):
        tmp = generate_second(mode, args.persons, args.seed, args.max_edits, "c360_second_")
        con, truth = load(tmp / "landing", tmp / "truth")
        keys = sorted(truth)
        cross = mode == "link"
        true = true_pairs(truth, cross)
        print(f"== {mode}: {len(keys):,} records, {len(true):,} true pairs")
        got, model = c360_model(con, keys, cross, args.min_precision)
        if got is None:
            print(f"c360 model refused: {model.reason}")
        else:
            p, r, f = score(got[0], true)
            print(f"c360 model   thr {model.threshold:.4f}: P {p:.4f} R {r:.4f} F1 {f:.4f} "
                  f"({got[1]:.1f}s)")  # fmt: skip
        if not args.no_stock:
            pairs, secs = stock_splink(con, keys, cross)
            p, r, f = score(pairs, true)
            print(f"stock Splink p>=0.5  : P {p:.4f} R {r:.4f} F1 {f:.4f} ({secs:.1f}s)")
        if args.pipeline:
            print(json.dumps(pipeline(mode, args.persons, args.seed), indent=1))


if __name__ == "__main__":
    main()
