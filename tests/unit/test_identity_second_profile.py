"""The probabilistic model on the second, independent noise profile (person-only records with
OCR and keyboard typos, swapped names, nicknames, missing fields, moved house:
demo/noise_second.py), and the guards that keep its links from over-merging:
the cluster-level check (no chaining through weak links), the household guard, a given/family
name swap weighed once.

Measure (prints the numbers docs/identity.md records):
    .venv/bin/pytest tests/unit/test_identity_second_profile.py -k floor -s
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import duckdb
import pytest

from demo.generator import PROFILES, generate
from orchestration.identity import config as identity_config
from orchestration.identity import probabilistic, training
from tests.identity_inputs import create_matching_inputs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import identity_person_only as bench

AS_OF = dt.date(2026, 11, 21)
PERSONS = 2000
SEED = 23
# Floors, stated: measured at 3,000 persons (seed 11) model-level link F1 0.885 and dedup
# cluster F1 0.879 (docs/identity.md); the model before the person-only fixes scored 0.808
# and 0.790 there. The profile is heavy on purpose (1-4 edits per duplicate): a pair that moved
# house and had its names swapped is beyond any matcher, so the floors are not 0.99.
LINK_F1_FLOOR = 0.85
DEDUP_F1_FLOOR = 0.84


def _profile(tmp_path: Path, mode: str):
    generate(PERSONS, SEED, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None,
             **PROFILES[f"person_{mode}"])  # fmt: skip
    return bench.load(tmp_path / "landing", tmp_path / "truth")


@pytest.fixture(scope="module")
def link(tmp_path_factory):
    con, truth = _profile(tmp_path_factory.mktemp("link"), "link")
    records = probabilistic.candidates(con)
    model = training.fit(records, identity_config.load().probabilistic, AS_OF)
    yield records, truth, model
    con.close()


def test_link_f1_on_the_second_profile_is_above_the_floor(link):
    records, truth, model = link
    assert model.accepted, model.reason
    links = probabilistic.predict(records, model.threshold, model.model)
    pairs = {
        p
        for p in zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True)
        if p[0].split(":")[0] != p[1].split(":")[0]
    }
    p, r, f1 = bench.score(pairs, bench.true_pairs(truth, cross=True))
    print(f"\nperson_link {PERSONS} persons: threshold {model.threshold:.4f} "
          f"P {p:.4f} R {r:.4f} F1 {f1:.4f}")  # fmt: skip
    assert p >= 0.99
    assert f1 >= LINK_F1_FLOOR


def test_the_prior_is_re_estimated_from_the_fitted_model(link):
    """The deterministic rules find far fewer than prior_recall of the true pairs in noisy
    data: their prior is several times too low; the refined one is near the truth."""
    records, truth, model = link
    n = records.num_rows
    true_prior = len(bench.true_pairs(truth, cross=False)) / (n * (n - 1) / 2)
    steps = model.training["prior_steps"]
    print(f"\nprior: true {true_prior:.3g}, steps {[f'{s:.3g}' for s in steps]}")
    assert steps[0] < true_prior / 2, "the deterministic estimate is far too low here"
    assert abs(model.match_prior / true_prior - 1) < 0.35


def test_dedup_cluster_f1_on_the_second_profile_is_above_the_floor(tmp_path):
    con, truth = _profile(tmp_path, "dedup")
    records = probabilistic.candidates(con)
    model = training.fit(records, identity_config.load().probabilistic, AS_OF)
    assert model.accepted, model.reason
    links = probabilistic.predict(records, model.threshold, model.model)
    pairs = set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))
    clustered = bench.clusters_to_pairs(pairs, sorted(truth))
    p, r, f1 = bench.score(clustered, bench.true_pairs(truth, cross=False))
    refused = (links.schema.metadata or {}).get(b"refused_by_cluster_check")
    print(f"\nperson_dedup {PERSONS} persons: clusters P {p:.4f} R {r:.4f} F1 {f1:.4f}; "
          f"refused by the cluster check {refused!r}")  # fmt: skip
    assert p >= 0.98
    assert f1 >= DEDUP_F1_FLOOR


def test_the_cluster_check_does_not_chain_weak_links():
    """A–B and B–C strong, A–C scored as two people: single-link clustering makes A = B = C;
    the check keeps the weaker link out. Unscored pairs are no evidence."""
    accepted = [("a", "b", 0.999), ("b", "c", 0.99)]
    scored = {("a", "b"): 0.999, ("b", "c"): 0.99, ("a", "c"): 0.001}
    kept, refused = probabilistic.cluster_check(accepted, scored)
    assert kept == {("a", "b")} and refused == 1
    # A–C never scored (no blocking rule put them together): nothing says they differ
    kept, refused = probabilistic.cluster_check(accepted, {("a", "b"): 0.999, ("b", "c"): 0.99})
    assert kept == {("a", "b"), ("b", "c")} and refused == 0
    # A–C scored as likely one person: the group holds
    scored[("a", "c")] = 0.9
    assert probabilistic.cluster_check(accepted, scored)[1] == 0
    # a link inside a group already joined is kept
    accepted.append(("a", "c", 0.9))
    assert ("a", "c") in probabilistic.cluster_check(accepted, scored)[0]


def test_a_swap_of_given_and_family_name_is_weighed_once():
    """Both name comparisons see a swap; only the first weighs it, in the other it is neutral
    (a null level), so a swap is one fact, not two."""
    settings = probabilistic.configured_settings(identity_config.Probabilistic(enabled=True))
    model = settings.get_settings("duckdb").as_dict()
    by_name = {c["output_column_name"]: c["comparison_levels"] for c in model["comparisons"]}

    def swapped(levels):
        label = lambda lv: (lv.get("label_for_charts") or "").lower()  # noqa: E731
        return next(lv for lv in levels if "reversed" in label(lv) or "swapped" in label(lv))

    assert not swapped(by_name["first_name"]).get("is_null_level")
    assert swapped(by_name["last_name"]).get("is_null_level")
    exact = next(lv for lv in by_name["last_name"] if lv.get("tf_adjustment_column"))
    assert exact["tf_adjustment_column"] == "last_name", "names are frequency-adjusted"


def _records(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    create_matching_inputs(con)
    con.executemany(
        "insert into intermediate.int_identity__records values (?, ?, ?, ?, null, null, ?, ?, ?, ?)",
        rows,
    )
    return con


def test_the_household_guard_keeps_a_parent_and_child_apart():
    """One surname at one address: birth dates years apart (a parent and a child of one name),
    or a missing birth date and another given name (two family members), are refused whatever
    the probability; a birth date one digit off links."""
    home = ("4613", "1 Lohil Street", "Boberwell")
    con = _records(
        [
            ("r|crm:contacts:1", "crm", "Ansel", "Quarrington", "1958-04-14", *home),
            ("r|loyalty:members:1", "loyalty", "Ansel", "Quarrington", "1987-11-02", *home),
            ("r|crm:contacts:2", "crm", "Bettany", "Quarrington", None, *home),
            ("r|loyalty:members:2", "loyalty", "Corliss", "Quarrington", "1990-01-01", *home),
            (
                "r|crm:contacts:3",
                "crm",
                "Dunstan",
                "Maplethorpe",
                "1971-06-20",
                "2611",
                "12 Larkspur Row",
                "Yallan",
            ),
            (
                "r|loyalty:members:3",
                "loyalty",
                "Dunstan",
                "Maplethorpe",
                "1971-06-26",
                "2611",
                "12 Larkspur Row",
                "Yallan",
            ),
        ]
    )
    records = probabilistic.candidates(con)
    # the pairs that share a name_address value are the deterministic rules' (none here)
    links = probabilistic.predict(records, 0.5)
    pairs = set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))
    assert ("r|crm:contacts:3", "r|loyalty:members:3") in pairs, "a one-digit typo links"
    for a in ("r|crm:contacts:1", "r|crm:contacts:2", "r|loyalty:members:1"):
        for b in ("r|loyalty:members:1", "r|loyalty:members:2", "r|crm:contacts:2"):
            assert (min(a, b), max(a, b)) not in pairs, (a, b)
    assert int(links.schema.metadata[b"refused_by_household_guard"]) >= 1


def test_a_nickname_for_the_given_name_links(link, tmp_path):
    """Loyalty cards whose only edit is a nickname (William → Bill; the profile's edits file):
    the trained model learns the nickname level as evidence for a match (m above u) and links
    them to their CRM contact. Measured (2,000 persons, seed 23): 34 of 34 linked; with the level
    off 31 of 34 (the name fell to 'else', the strongest evidence against)."""
    records, truth, model = link
    generate(PERSONS, SEED, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None,
             **PROFILES["person_link"])  # fmt: skip
    with (tmp_path / "truth" / "second_noise_edits.csv").open() as f:
        nicknamed = {
            f"r|{r['source']}:{r['entity']}:{r['source_record_id']}"
            for r in csv.DictReader(f)
            if r["edits"] == "nickname"
        }
    (level,) = [
        lv
        for c in model.model["comparisons"]
        if c["output_column_name"] == "first_name"
        for lv in c["comparison_levels"]
        if lv.get("label_for_charts") == "first_name a nickname of the other"
    ]
    assert level["m_probability"] > 2 * level["u_probability"]
    links = probabilistic.predict(records, model.threshold, model.model)
    linked = set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))
    pairs = [p for p in bench.true_pairs(truth, cross=True) if set(p) & nicknamed]
    got = sum(p in linked for p in pairs)
    print(f"\nnickname-only duplicates linked: {got}/{len(pairs)}")
    assert len(pairs) >= 20
    assert got / len(pairs) >= 0.95


def test_the_edit_weights_name_only_known_edit_kinds():
    from demo.noise_second import EDIT_WEIGHTS, SecondNoise

    assert dict(SecondNoise().edit_weights) == EDIT_WEIGHTS
    with pytest.raises(ValueError, match=r"unknown edit kinds \['typo'\]"):
        SecondNoise(edit_weights={"ocr": 1.0, "typo": 2.0})
