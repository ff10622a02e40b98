"""The birth-date guard's notion of one typo (dbt macro birth_dates_alike), run on DuckDB against
a Python reference: equal, one digit different, two adjacent digits swapped, or day and month
swapped are alike; a parent's and a child's dates (years apart) are not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np

from orchestration.dbt_macros import project_macros

MACRO = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "birth_dates_alike.sql"


def _sql(a: str, b: str) -> str:
    return str(project_macros(("birth_dates_alike",)).birth_dates_alike(a, b))


def _alike(a: dt.date, b: dt.date) -> bool:
    x, y = a.isoformat(), b.isoformat()
    diff = [i for i in range(10) if x[i] != y[i]]
    if len(diff) <= 1:
        return True
    if len(diff) == 2 and diff[1] == diff[0] + 1:
        i = diff[0]
        if x[i] == y[i + 1] and x[i + 1] == y[i]:
            return True
    return x[:4] == y[:4] and x[5:7] == y[8:10] and x[8:10] == y[5:7]


def test_the_macro_agrees_with_the_reference_on_duckdb():
    rng = np.random.default_rng(3)
    start = dt.date(1930, 1, 1).toordinal()
    pairs = [
        (dt.date(1980, 5, 17), dt.date(1980, 5, 11)),  # one digit
        (dt.date(1980, 5, 17), dt.date(1980, 5, 17)),  # equal
        (dt.date(1971, 3, 14), dt.date(1971, 3, 41 - 10)),  # 14 → 31: two digits
        (dt.date(1985, 3, 12), dt.date(1958, 3, 12)),  # 85 → 58: adjacent digits swapped
        (dt.date(1990, 4, 7), dt.date(1990, 7, 4)),  # day and month swapped
        (dt.date(1950, 2, 3), dt.date(1982, 9, 27)),  # parent and child
    ]
    for _ in range(3000):
        a = dt.date.fromordinal(start + int(rng.integers(27000)))
        text = list(a.isoformat())
        i = int(rng.choice([2, 3, 5, 6, 8, 9]))
        text[i] = str(rng.integers(10))
        try:
            b = dt.date.fromisoformat("".join(text))
        except ValueError:
            b = dt.date.fromordinal(start + int(rng.integers(27000)))
        pairs.append((a, b))
    con = duckdb.connect()
    con.execute("create table p (a date, b date)")
    con.executemany("insert into p values (?, ?)", pairs)
    got = con.execute(f"select a, b, {_sql('a', 'b')} from p").fetchall()
    assert [g[2] for g in got] == [_alike(a, b) for a, b in pairs]
    assert [g[2] for g in got[:6]] == [True, True, False, True, True, False]
