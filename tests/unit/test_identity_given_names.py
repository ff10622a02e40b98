"""Nickname groups of given names (orchestration/identity/given_names.py): the Python test and
the SQL level the probabilistic model compares with agree; the default model has the level."""

from __future__ import annotations

import duckdb
import pytest

from orchestration.identity import config as identity_config
from orchestration.identity import given_names, probabilistic


def test_nicknames_of_one_name_share_a_group():
    assert given_names.nickname_of("Bill", "William")
    assert given_names.nickname_of("bill", "will")  # both nicknames of william
    assert given_names.nickname_of("Beth", "ELIZABETH")
    assert not given_names.nickname_of("Ann", "Bob")
    assert not given_names.nickname_of("Bill", None)
    assert not given_names.nickname_of("Zzyzx", "Zzyzx")  # a name the table does not know


def test_sql_level_agrees_with_python_on_every_name():
    """Each name of the table against a name of its group and a name of no group of its: the
    nickname level's SQL (list_has_any over the joined groups, as probabilistic._linker joins
    them) gives what nickname_of() gives."""
    groups = given_names.groups()
    names = list(groups)
    pairs = [(n, groups[n][0]) for n in names] + [(n, names[(i * 7919) % len(names)])
                                                  for i, n in enumerate(names)]  # fmt: skip
    con = duckdb.connect()
    con.register("given_name_groups", given_names.table())
    con.execute("create table pairs (a varchar, b varchar)")
    con.executemany("insert into pairs values (?, ?)", pairs)
    got = con.execute(
        """
        select p.a, p.b, coalesce(list_has_any(l.groups, r.groups), false)
        from pairs as p
        left join given_name_groups as l on l.name = p.a
        left join given_name_groups as r on r.name = p.b
        """
    ).fetchall()
    assert len(got) == len(pairs)
    assert sum(ok for _a, _b, ok in got) >= len(names)  # every name meets its own group
    mismatched = [(a, b) for a, b, ok in got if ok != given_names.nickname_of(a, b)]
    assert not mismatched, mismatched[:5]


def test_the_default_first_name_comparison_has_a_nickname_level():
    config = identity_config.Probabilistic(enabled=True)
    settings = probabilistic.configured_settings(config).get_settings("duckdb").as_dict()
    labels = {
        c["output_column_name"]: [lv.get("label_for_charts", "") for lv in c["comparison_levels"]]
        for c in settings["comparisons"]
    }
    assert "first_name a nickname of the other" in labels["first_name"]
    assert not any("nickname of the other" in label for label in labels["last_name"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"date_of_birth": {"kind": "date", "nicknames": True}}, "date_of_birth.nicknames"),
        ({"first_name": {"kind": "name", "nicknames": "yes"}}, "first_name.nicknames"),
    ],
)
def test_nicknames_only_on_a_name(spec, message):
    with pytest.raises(identity_config.IdentityConfigError, match=message):
        identity_config._comparisons(spec, "vars.identity.probabilistic.comparisons")


def household_conflict(
    first: str | None, dob: str | None, other: str | None, other_dob: str | None
) -> bool:
    """The household guard on two records of one surname at one address (given names and birth
    dates as given)."""
    con = duckdb.connect()
    con.register("given_name_groups", given_names.table())
    for side, name, date in (("l", first, dob), ("r", other, other_dob)):
        con.execute(
            f"""
            create table {side} as
            select ? as first_name, 'smith' as last_name, ? as date_of_birth,
                'oakave' as street, '12345' as postal_code, 'springfield' as city,
                (select groups from given_name_groups where name = ?) as first_name_nicknames
            """,
            [name, date, name],
        )
    return con.execute(f"select {probabilistic.HOUSEHOLD_CONFLICT} from l, r").fetchone()[0]


@pytest.mark.parametrize(
    ("first", "other", "household"),
    [("william", "bill", False), ("elizabeth", "beth", False), ("anna", "peter", True)],
)
def test_the_household_guard_takes_a_nickname_for_one_name(first, other, household):
    """One surname at one address, a birth date missing: two given names that disagree outright
    are two family members (refused), a name and its nickname are not."""
    assert household_conflict(first, "1970-01-02", other, None) is household
