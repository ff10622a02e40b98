"""One table's rows on two engines, compared the way the engine e2e tests need."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from decimal import Decimal


def row_differences(
    name: str,
    cols: list[str],
    rows: list[tuple],
    duck_rows: list[tuple],
    engine: str,
    skip: Collection[str] = (),
) -> list[str]:
    """How `rows` (on `engine`) differ from DuckDB's `duck_rows` of table `name`: row counts,
    then every column but `skip` (load and run times, run ids) exactly, decimals and floats
    sorted and to a cent (engines divide and round differently, so a half-cent tie can round
    either way)."""
    if len(rows) != len(duck_rows):
        return [f"{name}: {len(rows)} rows on {engine} vs {len(duck_rows)} on DuckDB"]
    rows, duck_rows = [_hashable(r) for r in rows], [_hashable(r) for r in duck_rows]
    numeric = {
        i
        for i in range(len(cols))
        if any(isinstance(r[i], (float, Decimal)) for r in rows + duck_rows)
    }
    exact = [i for i in range(len(cols)) if i not in numeric and cols[i] not in skip]
    problems = []
    if Counter(tuple(r[i] for i in exact) for r in rows) != Counter(
        tuple(r[i] for i in exact) for r in duck_rows
    ):
        differ = [
            cols[i]
            for i in exact
            if Counter(r[i] for r in rows) != Counter(r[i] for r in duck_rows)
        ]
        problems.append(f"{name}: rows differ (columns: {differ or 'combined'})")
    for i in sorted(i for i in numeric if cols[i] not in skip):
        a = sorted((r[i] is not None, float(r[i] or 0)) for r in rows)
        b = sorted((r[i] is not None, float(r[i] or 0)) for r in duck_rows)
        if [x[0] for x in a] != [y[0] for y in b] or any(
            abs(x[1] - y[1]) > 0.0101 for x, y in zip(a, b, strict=True)
        ):
            problems.append(f"{name}.{cols[i]}: values differ")
    return problems


def _hashable(value):
    """A row with its list values (arrays, e.g. quarantine's failed rules) as tuples."""
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value
