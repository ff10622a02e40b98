"""`evaluate_each` scores several variants (sources left out, scope) from one read of the truth
file, each equal to pairs counted one by one in Python over the same records."""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

import duckdb

from orchestration.identity.evaluate import IdentityScore, evaluate_each


def _warehouse(rows: list[tuple[str, str, str, str, str]], linked: set[str]):
    con = duckdb.connect()
    con.execute("create schema marts; create schema intermediate")
    con.execute(
        "create table marts.customer_id_map (source varchar, entity varchar, "
        "source_record_id varchar, customer_id varchar, record_key varchar)"
    )
    con.executemany(
        "insert into marts.customer_id_map values (?, ?, ?, ?, ?)",
        [(s, e, r, c, f"r|{s}:{r}") for s, e, r, c, _p in rows],
    )
    con.execute("create table intermediate.int_identity__candidate_links (record_key varchar)")
    con.executemany(
        "insert into intermediate.int_identity__candidate_links values (?)",
        [(k,) for k in sorted(linked)],
    )
    return con


def _by_hand(rows, unmapped, linked, excluded, scope) -> IdentityScore:
    """The score counted pair by pair over the records the variant keeps."""
    kept = [
        r
        for r in rows
        if r[0] not in excluded
        and (scope == "all" or r[1] != "anonymous_ids" or f"r|{r[0]}:{r[2]}" in linked)
    ]
    pairs = list(itertools.combinations(kept, 2))
    true = sum(a[4] == b[4] for a, b in pairs)
    pred = sum(a[3] == b[3] for a, b in pairs)
    ok = sum(a[4] == b[4] and a[3] == b[3] for a, b in pairs)
    in_truth = len([r for r in rows if r[0] not in excluded]) + len(
        [u for u in unmapped if u[0] not in excluded]
    )

    def largest(i: int) -> int:
        sizes: dict[str, int] = {}
        for r in kept:
            sizes[r[i]] = sizes.get(r[i], 0) + 1
        return max(sizes.values(), default=0)

    return IdentityScore(
        records_scored=len(kept),
        records_unmatched_in_truth=in_truth - len(kept),
        true_persons=len({r[4] for r in kept}),
        predicted_customers=len({r[3] for r in kept}),
        true_pairs=true,
        predicted_pairs=pred,
        correct_pairs=ok,
        largest_person=largest(4),
        largest_customer=largest(3),
    )


def test_each_variant_equals_its_pairs_counted_by_hand(tmp_path: Path) -> None:
    rnd = random.Random(5)
    rows = []
    for i in range(60):
        source, entity = rnd.choice(
            [("crm", "contacts"), ("shop", "customers"), ("web", "anonymous_ids")]
        )
        rows.append((source, entity, f"id{i}", f"cust{rnd.randrange(15)}", f"p{rnd.randrange(12)}"))
    linked = {
        f"r|{s}:{r}" for s, e, r, _c, _p in rows if e == "anonymous_ids" and rnd.random() < 0.5
    }
    # in the truth, not in the map: counted as not resolved
    unmapped = [("crm", "contacts", "gone1", "p1"), ("web", "anonymous_ids", "gone2", "p2")]
    truth = tmp_path / "truth.csv"
    with truth.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "entity", "source_record_id", "person_id"])
        w.writerows([(s, e, r, p) for s, e, r, _c, p in rows] + unmapped)
    variants = [((), "all"), (("web",), "all"), ((), "identified"), (("crm", "web"), "identified")]
    with _warehouse(rows, linked) as con:
        got = evaluate_each(con, truth, *variants)
    want = [_by_hand(rows, unmapped, linked, set(x), scope) for x, scope in variants]
    assert got == want
    # the variants differ (each filter bites), so a variant scored as another would fail
    assert len({g.records_scored for g in got}) == len(got)
