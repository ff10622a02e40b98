"""Person-only recall without precision loss (docs/identity.md, *Stock Splink against c360*):
a birth date two typos off is a level of its own, the household guard lets one given name with
a birth date two typos off through, and two full names never meet through a diminutive they
share.

    .venv/bin/pytest -q -p no:randomly tests/unit/test_identity_person_recall.py
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from demo.generator import PROFILES, generate
from orchestration.identity import config as identity_config
from orchestration.identity import given_names, probabilistic, training
from tests.unit.test_identity_blocking import splink_pair_count
from tests.unit.test_identity_given_names import household_conflict

AS_OF = dt.date(2026, 11, 21)
TWO_TYPOS = 'damerau_levenshtein("date_of_birth_l", "date_of_birth_r") <= 2'


def _date_levels(model: dict) -> list[dict]:
    (levels,) = [
        c["comparison_levels"]
        for c in model["comparisons"]
        if c["output_column_name"] == "date_of_birth"
    ]
    return levels


def test_the_date_comparison_has_a_two_typo_level_after_the_one_typo_level():
    settings = probabilistic.configured_settings(identity_config.Probabilistic(enabled=True))
    conditions = [lv["sql_condition"] for lv in _date_levels(settings.get_settings("duckdb")
                                                                .as_dict())]  # fmt: skip
    one = next(i for i, c in enumerate(conditions) if "<= 1" in c and "damerau" in c)
    assert TWO_TYPOS in conditions[one + 1], conditions
    assert conditions[-1] == "ELSE"


def test_the_trained_model_weighs_two_typos_as_evidence_for_a_match(tmp_path):
    """Within one source, two copies each a typo from the truth are two typos from each other:
    trained without labels on such data (the second profile's duplicates, 2,000 persons), the
    level's m is well above its u."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import identity_person_only as bench

    generate(2000, 23, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None,
             **PROFILES["person_dedup"])  # fmt: skip
    con, _truth = bench.load(tmp_path / "landing", tmp_path / "truth")
    model = training.fit(probabilistic.candidates(con), identity_config.load().probabilistic, AS_OF)
    assert model.accepted, model.reason
    (level,) = [lv for lv in _date_levels(model.model) if TWO_TYPOS in lv["sql_condition"]]
    else_level = _date_levels(model.model)[-1]
    # measured m / u 3.2 (+1.7 bits), where the else level is evidence against
    assert level["m_probability"] > 2 * level["u_probability"]
    assert else_level["m_probability"] < else_level["u_probability"]


@pytest.mark.parametrize(
    ("first", "other", "dob", "other_dob", "household"),
    [
        ("dunstan", "dunstan", "1971-06-20", "1971-08-26", False),  # two typos, one name
        ("william", "bill", "1971-06-20", "1971-08-26", False),  # a nickname is one name
        ("dunstan", "dunstn", "1971-06-20", "1971-08-26", False),  # one typo in the name
        ("ansel", "ansel", "1958-04-14", "1987-11-02", True),  # a parent and a child
        ("anna", "peter", "1971-06-20", "1971-08-26", True),  # spouses born the same year
        (None, "peter", "1971-06-20", "1971-08-26", True),  # a given name missing
        ("william", "robert", "1971-06-20", "1971-08-26", True),  # two full names
        ("dunstan", "dunstan", "1971-06-20", "1973-08-06", True),  # three typos
    ],
)
def test_the_household_guard_takes_two_date_typos_of_one_given_name(
    first, other, dob, other_dob, household
):
    """One surname at one address, both birth dates known: dates more than one typo apart are
    a parent and a child of one name, except two typos apart when the given names agree (one
    typo, or nicknames): relatives of one given name are a generation apart."""
    assert household_conflict(first, dob, other, other_dob) is household


def test_two_full_names_never_meet_through_a_diminutive_they_share():
    """The nicknames table lists William and Robert under Bill (and Bill under both): a name
    only counts as what a shorter name abbreviates, so Bill is a nickname of both, and William
    and Robert stay two names."""
    assert given_names.nickname_of("William", "Bill")
    assert given_names.nickname_of("Robert", "Bill")
    assert given_names.nickname_of("Bill", "Will")  # both diminutives of William
    assert not given_names.nickname_of("William", "Robert")
    assert not given_names.nickname_of("Robert", "Roger")  # through Bobby


def test_the_name_address_guard_takes_dates_two_digits_apart_on_duckdb():
    """The dbt macro birth_dates_two_digits_apart (the name-and-address key's birth-date guard:
    its key holds the given name) against a Python reference: exactly two digits of the ISO
    date differ."""
    from orchestration.dbt_macros import project_macros

    module = project_macros(("birth_dates_two_digits_apart",))
    pairs = [
        ("1971-06-20", "1971-08-26", True),  # month and day digit
        ("1971-06-20", "1971-06-20", False),  # equal: birth_dates_alike's
        ("1971-06-20", "1971-06-21", False),  # one digit: birth_dates_alike's
        ("1958-04-14", "1987-11-02", False),  # a parent and a child
        ("1958-04-14", "1988-04-14", False),  # one digit (birth_dates_alike's)
        ("1958-04-14", "1983-04-14", True),  # a generation apart on one day and month
        ("1971-06-20", "1973-08-06", False),  # three digits
    ]
    con = duckdb.connect()
    con.execute("create table p (a date, b date)")
    con.executemany("insert into p values (?, ?)", [(a, b) for a, b, _ in pairs])
    sql = str(module.birth_dates_two_digits_apart("a", "b"))
    got = [row[0] for row in con.execute(f"select {sql} from p").fetchall()]
    assert got == [sum(x != y for x, y in zip(a, b, strict=True)) == 2 for a, b, _ in pairs]
    assert got == [want for _a, _b, want in pairs]


def test_a_pair_with_locality_and_postcode_both_off_is_compared():
    """One person at one house: both names mistyped, the birth date two typos off, the
    postcode mistyped and the locality left out — only house number + street survive, and the
    project's blocking rules compare the pair (Splink's own count)."""
    import pyarrow as pa

    columns = ["unique_id", "first_name", "last_name", "date_of_birth", "postal_code",
               "street_number", "street", "city", "phone_stem", "email_domain", "email_tail"]  # fmt: skip
    rows = [
        ["a", "rosalind", "tennyworth", "1971-06-20", "2480", "3", "wattleway", "lismore"],
        ["b", "rosalnd", "tenyworth", "1971-08-26", "2408", "3", "wattleway", None],
    ]
    records = pa.table(
        {c: pa.array([(r + [None] * 3)[i] for r in rows], pa.string()) for i, c in
         enumerate(columns)}
    )  # fmt: skip
    assert splink_pair_count(records, identity_config.load().probabilistic) == 1


def test_the_cluster_check_never_merges_a_pair_the_household_guard_calls_two_people():
    """William Thorson 1941 (a) and William Thorson 1994 (c) at one address are refused as a
    direct link; Bill Thorson with no birth date (b) scores high against both. Chained, a–b and
    b–c would make them one customer although the mean over the cross pairs passes: the check
    refuses the weaker link."""
    accepted = [("a", "b", 0.999), ("b", "c", 0.995)]
    scored = {("a", "b"): 0.999, ("b", "c"): 0.995, ("a", "c"): 0.6}
    kept, refused = probabilistic.cluster_check(accepted, scored, {("a", "c")})
    assert kept == {("a", "b")}
    assert refused == 1
    # without the guard's verdict the mean (0.80) lets the chain through
    assert probabilistic.cluster_check(accepted, scored)[1] == 0


@pytest.mark.parametrize(
    ("other_dob", "chained"),
    [
        ("1994-05-07", False),  # a generation apart: a parent and a child of one name
        ("1943-08-26", True),  # three digits off, two years: copies of one person's record
    ],
)
def test_a_chain_through_a_record_without_birth_date_keeps_parent_and_child_apart(
    other_dob, chained
):
    """William Thorson 1941 and William Thorson of another birth date at one address, and a
    record `Wiliam Thorson` without a birth date between them (the shipped fixed model scores
    both of its links 0.9999). The guard refuses the direct pair either way; the cluster check
    refuses the chain only when the two dates are a generation apart."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_identity_second_profile import _records

    home = ("3251", "156 Winchen Place", "Kellyville")
    con = _records(
        [
            ("r|crm:contacts:1", "crm", "William", "Thorson", "1941-03-27", *home),
            ("r|crm:contacts:2", "crm", "Wiliam", "Thorson", None, *home),
            ("r|crm:contacts:3", "crm", "William", "Thorson", other_dob, *home),
        ]
    )
    links = probabilistic.predict(probabilistic.candidates(con), 0.5)
    pairs = set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))
    assert ("r|crm:contacts:1", "r|crm:contacts:2") in pairs
    assert (("r|crm:contacts:2", "r|crm:contacts:3") in pairs) is chained
