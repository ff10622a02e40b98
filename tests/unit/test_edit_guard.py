"""The guard in front of one-edit tests (orchestration/identity/edit_guard.py) never changes a
level: on random pairs of near and far strings, ASCII and not, the guarded condition holds
exactly where DuckDB's `damerau_levenshtein(a, b) <= 1` holds, and it is idempotent."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pytest

from orchestration.identity.edit_guard import guard_settings, guard_sql

ASCII = "abcdefghij.@-0123"
WIDE = ASCII + "üéßøñ" + "ﬁＡ"  # two- and three-byte UTF-8 characters


def _edit(rng: random.Random, s: str, alphabet: str) -> str:
    """One random edit: substitution, insertion, deletion or adjacent transposition."""
    i = rng.randrange(len(s) + 1)
    kind = rng.choice(("sub", "ins", "del", "swap"))
    c = rng.choice(alphabet)
    if kind == "ins" or not s:
        return s[:i] + c + s[i:]
    i = min(i, len(s) - 1)
    if kind == "sub":
        return s[:i] + c + s[i + 1 :]
    if kind == "del":
        return s[:i] + s[i + 1 :]
    if i + 1 < len(s):
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    return s


def _pairs(n: int, seed: int, alphabet: str) -> list[tuple[str | None, str | None]]:
    rng = random.Random(seed)
    out: list[tuple[str | None, str | None]] = [(None, "a"), ("a", None), ("", ""), ("", "x")]
    for _ in range(n):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))
        b = a
        for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
            b = _edit(rng, b, alphabet)
        if rng.random() < 0.1:  # an unrelated string
            b = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))
        out.append((a, b))
    return out


@pytest.mark.parametrize("alphabet", [ASCII, WIDE], ids=["ascii", "utf8"])
def test_guarded_one_edit_level_equals_the_distance_test(alphabet: str) -> None:
    pairs = _pairs(20_000, seed=len(alphabet), alphabet=alphabet)
    con = duckdb.connect()
    con.register("p", pa.table({"a": [a for a, _ in pairs], "b": [b for _, b in pairs]}))
    plain = "damerau_levenshtein(a, b) <= 1"
    guarded = guard_sql(plain)
    assert guarded != plain and "damerau_levenshtein(a, b) < 2" in guarded
    # as a CASE condition, the way Splink evaluates a level: null and false both fail
    rows = con.execute(
        f"select a, b, case when {plain} then 1 else 0 end, case when {guarded} then 1 else 0 end "
        "from p"
    ).fetchall()
    differ = [(a, b, x, y) for a, b, x, y in rows if x != y]
    assert not differ, differ[:5]
    one_edit = sum(x for _, _, x, _ in rows)
    # the sample exercises both outcomes, many times over
    assert 1_000 < one_edit < len(rows) - 1_000


def test_guard_is_idempotent_and_leaves_other_sql_alone() -> None:
    sql = (
        '(damerau_levenshtein("email_l", "email_r") <= 1 or jaro_winkler_similarity(x_l, x_r)'
        " >= 0.9) and damerau_levenshtein(d_l, d_r) <= 2"
    )
    once = guard_sql(sql)
    assert guard_sql(once) == once
    assert "damerau_levenshtein(d_l, d_r) <= 2" in once  # only one-edit tests are guarded
    assert "jaro_winkler_similarity(x_l, x_r) >= 0.9" in once
    settings = {
        "comparisons": [
            {"comparison_levels": [{"sql_condition": sql, "label_for_charts": "L"}, {"x": 1}]}
        ]
    }
    guarded = guard_settings(settings)["comparisons"][0]["comparison_levels"]
    assert guarded[0] == {"sql_condition": once, "label_for_charts": "L"}
    assert guarded[1] == {"x": 1}
