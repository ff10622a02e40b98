"""Given names and their nicknames, for the probabilistic model's nickname level.

People write the name they go by on one form and their full name on another (William and Bill,
Elizabeth and Beth, Robert and Bob): a string comparison sees two different names, yet it is one
person's commonest variation after a typo. The groups come from the `nicknames` package (a
maintained, openly licensed table of English given names and their diminutives, not data c360
generates): a name's **groups** are the canonical names it is a nickname of that are at least as
long as it, plus the name itself when it has nicknames. Two given names are nicknames of one
another when their groups share a name (`bill` → {william, robert, ...}, `william` → {william};
`bill` and `will` meet in `william`).

Only a name at least as long counts as what a name shortens: a diminutive is a shortening (Bill,
Beth, Peggy), and the table relates names both ways (it lists `william` and `robert` under `bill`,
and `bill` under both), so without the bound two full names meet through a diminutive they share
— William and Robert through Bill — and two different people of one surname and address linked
as one (the household guard lets a nickname pass as one name).

Grain of `table()`: one row per folded given name the package knows (`name`, `groups` a sorted
list). The probabilistic model's candidates join it on the folded first and last name
(probabilistic.CANDIDATES_SQL), and `nickname_of()` is the same test in Python:
tests/unit/test_identity_given_names.py checks both agree on every name of the table.
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa

from orchestration.identity.fold import fold


@lru_cache(maxsize=1)
def groups() -> dict[str, tuple[str, ...]]:
    """Folded given name → its groups (sorted), for every name the nicknames table holds."""
    from nicknames import NickNamer

    namer = NickNamer()
    out: dict[str, set[str]] = {}
    for canonical, nicknames in namer.nickname_lookup.items():
        key = fold(canonical)
        if not key:
            continue
        out.setdefault(key, set()).add(key)
        for nickname in nicknames:
            nick = fold(nickname)
            # a diminutive shortens its name: a longer "nickname" is not one of this name's
            if nick and len(nick) <= len(key):
                out.setdefault(nick, set()).add(key)
    return {name: tuple(sorted(g)) for name, g in sorted(out.items())}


def nickname_of(a: str | None, b: str | None) -> bool:
    """Whether two given names (folded or not) share a group: one is a nickname of the other,
    or both are nicknames of one name. Not for equal names: the exact level comes first."""
    left, right = groups().get(fold(a) or ""), groups().get(fold(b) or "")
    return bool(left and right and set(left) & set(right))


def table() -> pa.Table:
    """The groups as an Arrow table (name, groups): joined in SQL by the model's candidates."""
    data = groups()
    return pa.table(
        {
            "name": pa.array(list(data), pa.string()),
            "groups": pa.array([list(g) for g in data.values()], pa.list_(pa.string())),
        }
    )
