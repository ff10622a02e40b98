"""Normalised identifiers of raw columns, computed in the warehouse (erasure's matching).

Grain of one index: one row per distinct raw value of one identifier column of one table, with
the (kind, normalised value) it holds — the same pair `identifiers.normalise` gives. The index is a
temp table, so a warehouse of millions of people is matched by hash joins, never fetched into
Python:

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


class ColumnIndex:
    """Per (table, identifier column): a temp table (value, kind, norm) built once per erasure
    transaction; `pairs` joins it with every request's identifiers."""

    def __init__(self, con: Connection):
        self.con = con
        self._dialect = dialect_of(con)
        self._tables: dict[tuple[str, str], str] = {}
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

    def _build(self, table: str, col: IdColumn) -> str:
        name = f"_c360_erasure_idx_{len(self._tables)}"
        c = quote_ident(col.column)
        extra = col.region_column or col.type_column
        e = f"cast({quote_ident(extra)} as varchar)" if extra else "null::varchar"
        value_type = self._type(table, col.column)
        distinct = f"select distinct {c} as value, {e} as other from {table} where {c} is not null"
        if value_type not in _TEXT_TYPES | _INTEGER_TYPES:
            # a column of another type: every value through Python, as `normalise` reads it
            self.con.execute(
                f"create temp table {name} as select d.value, null::varchar as kind, "
                f"null::varchar as norm from ({distinct}) d limit 0"
            )
            self._python_rows(name, col, f"select value, other from ({distinct}) as d")
            return name
        if col.type_column:
            kind_expr = (
                "case lower(trim(d.other)) when 'email' then 'email' when 'phone' then 'phone' "
                "when 'customer_id' then 'customer_id' end"
            )
        else:
            kind_expr = f"'{col.kind}'"
        src, norm, ok = self._sql_norm(col, kind_expr, value_type)
        self.con.execute(
            f"create temp table {name} as select value, kind, norm from ("
            f"select d.value, {kind_expr} as kind, {norm} as norm, {ok} as sql_ok "
            f"from ({distinct}) d {src}) n where sql_ok and kind is not null and norm is not null"
        )
        self._python_rows(
            name,
            col,
            f"select d.value, d.other from ({distinct}) d {src} where not ({ok})",
        )
        return name

    def _python_rows(self, name: str, col: IdColumn, select: str) -> None:
        """Normalise the rows of `select` (value, other) in Python and add them to `name`."""
        rows = []
        for value, other in self.con.execute(select).fetchall():
            kind = kind_of_row(col, other) if col.type_column else col.kind
            norm = normalise(kind, value, other if col.region_column else None) if kind else None
            if norm is not None:
                rows.append((value, kind, norm))
        if not rows:
            return
        values, kinds, norms = zip(*rows, strict=True)
        self.con.register(
            "_c360_erasure_py",
            pa.table({"value": list(values), "kind": list(kinds), "norm": list(norms)}),
        )
        try:
            self.con.execute(f"insert into {name} select value, kind, norm from _c360_erasure_py")
        finally:
            self.con.unregister("_c360_erasure_py")

    def table(self, table: str, col: IdColumn) -> str:
        key = (table, col.column)
        if key not in self._tables:
            self._tables[key] = self._build(table, col)
        return self._tables[key]

    def pairs(self, table: str, col: IdColumn, ids: list[Ids]) -> list[tuple[int, object]]:
        """(request index, raw value of `col` holding one of that request's identifiers), for
        ids[i] the identifiers of request i."""
        needles = [(i, k, v) for i, got in enumerate(ids) for k, v in sorted(got)]
        if not needles or table in self._empty:
            return []
        idx = self.table(table, col)
        found = self._register_needles(needles)
        return self.con.execute(
            f"select distinct n.r, x.value from {idx} x join {found} n "
            "on x.kind = n.kind and x.norm = n.norm order by 1, 2"
        ).fetchall()
