"""Term frequencies fitted with the model: how common each name is, counted on the records the
model was trained on, kept in the model and used by every later scoring.

Splink adjusts an exact name match by the value's frequency (a rare surname is stronger evidence
than a common one). By default it counts the frequencies on the records it is scoring, so one
new record moves every value's frequency (the total changes) and with it every exact-name pair's
weight: a pair's probability would depend on which unrelated records arrived tonight. Counted at
training and kept in the model (as m and u are), a pair's score is a function of its two records
and the model only — the same every night until the model is trained again, which is what lets
a night score only the pairs of new and changed records.

Grain of what the model keeps (`KEY` in the model dict): per adjusted column the number of
non-null values at training (`total`) and the count of every value seen at least twice
(`counts`, keyed by the value's md5: no name is written into the model, an audit row that an
erasure does not rewrite). A value the model does not list counts once: seen once at training, or never —
either way as rare as a value can be. On the night the model was trained every value's
frequency is the one Splink would count itself (count / non-null values, as Splink computes
it: `term_frequencies_for_single_column_sql`), so that night's scores are unchanged.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

KEY = "c360_term_frequencies"


def columns(model: dict[str, Any]) -> list[str]:
    """The columns the model's levels adjust by term frequency, in comparison order."""
    out: list[str] = []
    for comparison in model.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            column = level.get("tf_adjustment_column")
            if column and column not in out:
                out.append(column)
    return out


def count(con: duckdb.DuckDBPyConnection, table: str, names: list[str]) -> dict[str, Any]:
    """Per column of `names` in `table`: its non-null values (`total`) and each value's count
    where it is at least 2 (`counts`)."""
    out: dict[str, Any] = {}
    for name in names:
        col = f'"{name}"'
        total = con.execute(f"select count({col}) from {table}").fetchone()[0]
        # each value by its md5, never as written: the model is an audit row that outlives an
        # erasure, and a name's count is all it needs
        rows = con.execute(
            f"select md5(cast({col} as varchar)) as v, count(*) from {table} "
            f"where {col} is not null group by {col} having count(*) >= 2 order by v"
        ).fetchall()
        out[name] = {"total": int(total), "counts": {str(v): int(c) for v, c in rows}}
    return out


def of_records(records: pa.Table, model: dict[str, Any]) -> dict[str, Any]:
    """`count` of the model's adjusted columns over `records` (the candidate records)."""
    from orchestration.warehouse import scratch

    names = [n for n in columns(model) if n in records.column_names]
    con = scratch()
    try:
        con.register("tf_records", records.select(names))
        return count(con, "tf_records", names)
    finally:
        con.close()


def register(linker: Any, con: duckdb.DuckDBPyConnection, table: str, frozen: dict) -> None:
    """Give `linker` the model's frequencies for every value of `table` (a value the model does
    not list counts once) instead of the ones Splink would count on `table`."""
    for name, fitted in frozen.items():
        col = f'"{name}"'
        lookup = f"c360_tf_{name}"
        counts = pa.table(
            {
                "value": pa.array(list(fitted["counts"]), pa.string()),
                "n": pa.array(list(fitted["counts"].values()), pa.int64()),
            }
        )
        con.register(f"{lookup}_arrow", counts)
        con.execute(f"create or replace table {lookup}_counts as select * from {lookup}_arrow")
        con.unregister(f"{lookup}_arrow")
        # float8 count over the bigint total: the division Splink's own table makes
        con.execute(
            f"create or replace table {lookup} as "
            f"select v.{col}, cast(coalesce(k.n, 1) as float8) / {int(fitted['total'])} "
            f'as "tf_{name}" '
            f"from (select distinct {col} from {table} where {col} is not null) as v "
            f"left join {lookup}_counts as k on k.value = md5(cast(v.{col} as varchar))"
        )
        linker.table_management.register_term_frequency_lookup(
            linker._db_api.register(lookup), name
        )
