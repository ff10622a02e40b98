"""A cheap necessary test in front of every `damerau_levenshtein(a, b) <= 1` a model scores with.

Grain: one SQL condition (a comparison level's `sql_condition`) in, the same condition out with
each one-edit test guarded; `guard_settings` does it for every level of a Splink settings dict.

Why: Splink evaluates a comparison's levels for every blocked pair, and the one-edit level of a
comparison runs the full Damerau-Levenshtein matrix whenever the exact level failed: on e-mail
addresses (20-40 characters) that matrix is most of the scoring's cost, for pairs that differ in
many places. Two strings one edit apart (a substitution, an insertion or deletion, or two
adjacent characters swapped) have lengths at most one apart, and the edit leaves either their
first k characters or their last k characters untouched, k = (shorter length - 1) // 2: an edit
at a position >= k keeps the prefix; one before k leaves at least (shorter - 1) - k >= k
characters after it, aligned from the end. So `abs(length) <= 1 and (prefix or suffix equal)` is
implied by the distance test, and putting it first (DuckDB evaluates an AND's later terms only
on the rows its earlier terms kept) skips the matrix for almost every unrelated pair without
changing any level a pair gets. DuckDB's distance counts UTF-8 bytes and the guard characters:
for valid UTF-8, a one-byte edit that leaves both strings valid is a one-character edit at the
same place, so the guard stays a necessary condition (tests/unit/test_edit_guard.py compares
both on random ASCII and non-ASCII strings).

The guarded form writes the distance test as `< 2`, so guarding twice changes nothing (a saved
model trained from guarded settings keeps its SQL as it is).
"""

from __future__ import annotations

import re
from typing import Any

_ARG = r"\s*(\"?[A-Za-z_][A-Za-z0-9_.]*\"?)\s*"
_ONE_EDIT = re.compile(rf"damerau_levenshtein\({_ARG},{_ARG}\)\s*<=\s*1\b")


def guard_sql(sql: str) -> str:
    """`sql` with each `damerau_levenshtein(a, b) <= 1` (a, b column references) behind the
    length-and-affix test of the module doc; anything else unchanged."""

    def guarded(m: re.Match[str]) -> str:
        a, b = m.group(1), m.group(2)
        k = f"((least(length({a}), length({b})) - 1) // 2)"
        return (
            f"(abs(length({a}) - length({b})) <= 1 "
            f"and (left({a}, {k}) = left({b}, {k}) or right({a}, {k}) = right({b}, {k})) "
            f"and damerau_levenshtein({a}, {b}) < 2)"
        )

    return _ONE_EDIT.sub(guarded, sql)


def guard_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The Splink settings dict with every comparison level's condition guarded (in place and
    returned); labels, weights and everything else as they were."""
    for comparison in settings.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            if isinstance(level.get("sql_condition"), str):
                level["sql_condition"] = guard_sql(level["sql_condition"])
    return settings
