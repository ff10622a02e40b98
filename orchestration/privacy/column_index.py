"""Normalised identifiers of raw columns, computed in the warehouse (erasure's matching).

Grain of one index: one row per (identifier column, distinct raw value) of one table's identifier
columns of one value type, with the (kind, normalised value) the value holds — the same pair
`identifiers.normalise` gives. The index is a temp table, so a warehouse of millions of people is
matched by hash joins, never fetched into Python; one per table and type rather than per column,
because on a server engine every statement is a round trip (a Spark job): a table's columns are
indexed, read back and matched in one statement each:

- emails and source ids: `trim` (and `lower` for emails) in SQL, for values of printable ASCII
  only, where SQL's trim/lower and Python's strip/lower agree character for character;
- phones: the E.164 of `reference.phone_numbers` for the same (raw text, region hint), the lookup
  staging reads, filled by the same libphonenumber call `normalise` makes;
- every other value (non-ASCII text, a phone text the lookup lacks, a type or region column with
  other characters) is normalised in Python by `identifiers.normalise` itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from orchestration.contracts.rules_sql import quote_ident
from orchestration.engine import Connection, dialect_of, table_exists
from orchestration.engine.spark_catalog import duckdb_type
from orchestration.privacy.identifiers import IdColumn, kind_of_row, normalise

PHONES = "reference.phone_numbers"
_ASCII = "'[ -~]*'"  # printable ASCII: Python's strip() removes exactly SQL trim()'s spaces here
_TEXT_TYPES = {"VARCHAR"}
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT"}  # fmt: skip
# Postgres' names of the types above (pg_typeof), as DuckDB's typeof names them
_PG_TYPES = {"text": "VARCHAR", "character varying": "VARCHAR", "smallint": "SMALLINT",
             "integer": "INTEGER", "bigint": "BIGINT"}  # fmt: skip
Ids = set[tuple[str, str]]


def _ascii(expr: str, dialect: str = "duckdb") -> str:
    if dialect != "postgres":  # Spark's full match is anchored at the very end, as DuckDB's
        return f"({expr} is null or regexp_full_match({expr}, {_ASCII}))"
    # anchored: DuckDB's regexp_matches (a partial match) is Postgres' `~`
    return f"({expr} is null or regexp_matches({expr}, '^[ -~]*$'))"


_NEEDLES = "_c360_erasure_needles"
_PY_ROWS = "_c360_erasure_py"


class ColumnIndex:
    """Per (table, identifier columns of one value type): a temp table (col, value, kind, norm)
    built once per erasure transaction; `pairs` joins it with every request's identifiers."""

    def __init__(self, con: Connection):
        self.con = con
        self._dialect = dialect_of(con)
        # (table, columns of one group) → index table
        self._tables: dict[tuple[str, tuple[str, ...]], str] = {}
        # (table, column) → type by DuckDB's name, read by `prepare` for a table's columns at once
        self._types: dict[tuple[str, str], str] = {}
        self._empty: set[str] = set()  # tables `prepare` found without a row
        self._has_phones = table_exists(con, "reference", "phone_numbers")
        # the needles registered last: one pass asks every column for the same identifiers
        self._needles: tuple[tuple[int, str, str], ...] | None = None

    def close(self) -> None:
        temp = "temp" if self._dialect == "duckdb" else "pg_temp"
        for name in self._tables.values():
            self.con.execute(f"drop table if exists {temp}.{name}")
        self._tables.clear()
        if self._needles is not None:
            self.con.unregister(_NEEDLES)
            self._needles = None

    def _register_needles(self, needles: list[tuple[int, str, str]]) -> str:
        """`needles` (request index, kind, norm) as the relation _NEEDLES, registered again only
        when they differ from the last call's (on a server each registration is a file and a
        view)."""
        key = tuple(needles)
        if key != self._needles:
            self.con.register(
                _NEEDLES,
                pa.table({"r": pa.array([n[0] for n in needles], pa.int64()),
                          "kind": pa.array([n[1] for n in needles], pa.string()),
                          "norm": pa.array([n[2] for n in needles], pa.string())}),
            )  # fmt: skip
            self._needles = key
        return _NEEDLES

    def prepare(self, table: str, columns: Sequence[str]) -> None:
        """Read the types of `columns` of `table` in one statement (on a server engine each
        statement is a round trip, a Spark job): the table's indexes then build without asking,
        and a table without a row needs no index at all."""
        wanted = [c for c in columns if (table, c) not in self._types]
        if not wanted or table in self._empty:
            return
        if self._dialect == "postgres":
            exprs = [f"cast(pg_typeof({quote_ident(c)}) as varchar)" for c in wanted]
        else:
            exprs = [f"typeof({quote_ident(c)})" for c in wanted]
        rows = self.con.execute(f"select {', '.join(exprs)} from {table} limit 1").fetchall()
        if not rows:
            self._empty.add(table)
            return
        for column, found in zip(wanted, rows[0], strict=True):
            if self._dialect == "spark":
                found = duckdb_type(found)
            elif self._dialect == "postgres":
                found = _PG_TYPES.get(found, found.upper())
            self._types[(table, column)] = found

    def _type(self, table: str, column: str) -> str:
        """The column's type by DuckDB's name (VARCHAR when the table has no row)."""
        self.prepare(table, [column])
        return self._types.get((table, column), "VARCHAR")

    def _groups(self, table: str, cols: Sequence[IdColumn]) -> list[tuple[IdColumn, ...]]:
        """`cols` grouped so one index holds each group: text columns together, integer columns
        of one type together (a union keeps the raw value's type, which the erasure's joins
        compare with the column), and a column of any other type alone (Python reads it)."""
        self.prepare(table, [c.column for c in cols])
        groups: dict[str, list[IdColumn]] = {}
        for col in cols:
            value_type = self._type(table, col.column)
            sql = value_type in _TEXT_TYPES | _INTEGER_TYPES
            groups.setdefault(value_type if sql else f"python:{col.column}", []).append(col)
        return [tuple(g) for g in groups.values()]

    def _sql_norm(self, col: IdColumn, kind_expr: str, value_type: str) -> tuple[str, str, str]:
        """(from clause, norm expression, where the SQL normalisation holds) over the distinct
        values `d` (columns value, other)."""
        text = "d.value" if value_type in _TEXT_TYPES else "cast(d.value as varchar)"
        other_ok = _ascii("d.other", self._dialect)
        trimmed = f"nullif(trim({text}), '')"
        phone, src, found = "null", "", "false"
        if (col.kind == "phone" or col.type_column) and self._has_phones:
            # a phone column, or a consent contact point whose type may say phone
            region = "coalesce(upper(trim(d.other)), '')" if col.region_column else "''"
            phone, found = "k.e164", "k.raw_text is not null"
            src = f"left join {PHONES} k on k.raw_text = {text} and k.region = {region}"
        norm = (
            f"case {kind_expr} when 'email' then lower({trimmed}) when 'phone' then {phone} "
            f"else {trimmed} end"
        )
        ascii_text = _ascii(text, self._dialect)
        ok = f"{other_ok} and case {kind_expr} when 'phone' then {found} else {ascii_text} end"
        return src, norm, ok

    @staticmethod
    def _distinct(table: str, col: IdColumn) -> str:
        """(value, other) of `col`: its distinct non-null values with the region or type beside."""
        c = quote_ident(col.column)
        extra = col.region_column or col.type_column
        e = f"cast({quote_ident(extra)} as varchar)" if extra else "null::varchar"
        return f"select distinct {c} as value, {e} as other from {table} where {c} is not null"

    def _build(self, table: str, cols: tuple[IdColumn, ...]) -> str:
        name = f"_c360_erasure_idx_{len(self._tables)}"
        value_type = self._type(table, cols[0].column)
        if value_type not in _TEXT_TYPES | _INTEGER_TYPES:
            # a column of another type: every value through Python, as `normalise` reads it
            (col,) = cols
            distinct = self._distinct(table, col)
            self.con.execute(
                f"create temp table {name} as select null::varchar as col, d.value, "
                f"null::varchar as kind, null::varchar as norm from ({distinct}) d limit 0"
            )
            self._python_rows(name, cols, [f"select '{col.column}' as col, value, other "
                                           f"from ({distinct}) as d"])  # fmt: skip
            return name
        sql_rows, python_selects = [], []
        for col in cols:
            if col.type_column:
                kind_expr = (
                    "case lower(trim(d.other)) when 'email' then 'email' when 'phone' then "
                    "'phone' when 'customer_id' then 'customer_id' end"
                )
            else:
                kind_expr = f"'{col.kind}'"
            src, norm, ok = self._sql_norm(col, kind_expr, value_type)
            distinct = self._distinct(table, col)
            sql_rows.append(
                f"select '{col.column}' as col, d.value, {kind_expr} as kind, {norm} as norm, "
                f"{ok} as sql_ok from ({distinct}) d {src}"
            )
            python_selects.append(
                f"select '{col.column}' as col, d.value, d.other from ({distinct}) d {src} "
                f"where not ({ok})"
            )
        self.con.execute(
            f"create temp table {name} as select col, value, kind, norm from ("
            f"{' union all '.join(sql_rows)}) n "
            "where sql_ok and kind is not null and norm is not null"
        )
        self._python_rows(name, cols, python_selects)
        return name

    def _python_rows(self, name: str, cols: tuple[IdColumn, ...], selects: list[str]) -> None:
        """Normalise the rows of `selects` (col, value, other) in Python and add them to
        `name`."""
        by_name = {c.column: c for c in cols}
        rows = []
        for column, value, other in self.con.execute(" union all ".join(selects)).fetchall():
            col = by_name[column]
            kind = kind_of_row(col, other) if col.type_column else col.kind
            norm = normalise(kind, value, other if col.region_column else None) if kind else None
            if norm is not None:
                rows.append((column, value, kind, norm))
        if not rows:
            return
        names, values, kinds, norms = zip(*rows, strict=True)
        self.con.register(
            _PY_ROWS,
            pa.table({"col": list(names), "value": list(values), "kind": list(kinds),
                      "norm": list(norms)}),
        )  # fmt: skip
        try:
            self.con.execute(f"insert into {name} select col, value, kind, norm from {_PY_ROWS}")
        finally:
            self.con.unregister(_PY_ROWS)

    def table(self, table: str, cols: tuple[IdColumn, ...]) -> str:
        """The index of `cols` of `table` (one group of `_groups`), built on first use."""
        key = (table, tuple(c.column for c in cols))
        if key not in self._tables:
            self._tables[key] = self._build(table, cols)
        return self._tables[key]

    def pairs(
        self, table: str, cols: Sequence[IdColumn], ids: list[Ids]
    ) -> dict[str, list[tuple[int, object]]]:
        """Per column of `cols`: (request index, raw value of the column holding one of that
        request's identifiers), for ids[i] the identifiers of request i; one statement per
        group of `_groups`."""
        needles = [(i, k, v) for i, got in enumerate(ids) for k, v in sorted(got)]
        if not needles or not cols or table in self._empty:
            return {}
        groups = self._groups(table, cols)
        if table in self._empty:
            return {}
        relation = self._register_needles(needles)
        found: dict[str, list[tuple[int, object]]] = {}
        for group in groups:
            idx = self.table(table, group)
            for column, r, value in self.con.execute(
                f"select distinct x.col, n.r, x.value from {idx} x join {relation} n "
                "on x.kind = n.kind and x.norm = n.norm order by 1, 2, 3"
            ).fetchall():
                found.setdefault(column, []).append((r, value))
        return found
