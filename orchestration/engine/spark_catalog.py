"""`information_schema.tables` and `.columns` on Spark, which has neither (grain: one statement
that reads them).

The Python steps ask the warehouse which tables and columns exist in standard SQL.
`SparkConnection` hands each such statement two relations built from Spark's own catalog
commands (`show tables`, `show views`, `describe table`), with DuckDB's names for the types, and
points the statement at them. Only the schemas and tables the statement names by literal are
described (`table_schema = 'marts'`, `table_name in (…)`): describing a table is a round trip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import pyarrow as pa
from sqlglot import exp

SCHEMA = "information_schema"
CATALOG = "spark_catalog"  # table_catalog of every row, and current_database() beside them
RELATIONS = ("tables", "columns")

# Spark's type names → DuckDB's (information_schema.columns.data_type), for the types the
# warehouse holds
_TYPES = {
    "string": "VARCHAR", "boolean": "BOOLEAN", "tinyint": "TINYINT", "smallint": "SMALLINT",
    "int": "INTEGER", "bigint": "BIGINT", "float": "FLOAT", "double": "DOUBLE", "date": "DATE",
    "timestamp_ntz": "TIMESTAMP", "timestamp": "TIMESTAMP WITH TIME ZONE", "binary": "BLOB",
}  # fmt: skip

Query = Callable[[str], list[tuple]]


def duckdb_type(spark_type: str) -> str:
    """DuckDB's name of a Spark column type (`array<string>` → `VARCHAR[]`, `decimal(12,2)` →
    `DECIMAL(12,2)`); an unknown type keeps Spark's name, upper-cased."""
    kind = spark_type.strip().lower()
    if kind.startswith("array<") and kind.endswith(">"):
        return duckdb_type(kind[6:-1]) + "[]"
    if kind.startswith("decimal"):
        return kind.upper().replace(" ", "")
    if kind.startswith(("varchar", "char")):
        return "VARCHAR"
    return _TYPES.get(kind, kind.upper())


def referenced(tree: exp.Expression) -> list[exp.Table]:
    """The `information_schema.tables` / `.columns` references of `tree`."""
    return [
        t
        for t in tree.find_all(exp.Table)
        if t.text("db").lower() == SCHEMA and t.name.lower() in RELATIONS
    ]


def literal_filter(tree: exp.Expression, column: str) -> set[str] | None:
    """The values `column` is compared with by `=` or `in` to string literals anywhere in
    `tree`, or None when it is not (then every value may be asked for)."""
    values: set[str] = set()
    for node in tree.find_all(exp.EQ, exp.In):
        col = node.this
        if not (isinstance(col, exp.Column) and col.name.lower() == column):
            continue
        others = [node.expression] if isinstance(node, exp.EQ) else node.expressions
        if not others or not all(isinstance(o, exp.Literal) and o.is_string for o in others):
            return None
        values |= {o.this for o in others}
    return values or None


class SparkCatalog:
    """The catalog of one Spark session, read through `query` (Spark SQL → rows)."""

    def __init__(self, query: Query, hidden_prefixes: Iterable[str] = ()) -> None:
        self._query = query
        # schemas whose name starts so are not the warehouse's (sessions' scratch schemas)
        self._hidden_prefixes = tuple(p.lower() for p in hidden_prefixes)

    def schema_names(self) -> list[str]:
        """Every schema of the catalog, as Spark names it (lower case), hidden ones too."""
        return [row[0] for row in self._query("show schemas")]

    def _schemas(self, wanted: set[str] | None) -> list[str]:
        names = self.schema_names()
        shown = [n for n in names if not n.lower().startswith(self._hidden_prefixes)]
        return [n for n in shown if wanted is None or n in wanted]

    def _relations(self, schemas: list[str], tables: set[str] | None) -> list[tuple[str, str, str]]:
        out = []
        for schema in schemas:
            views = {row[1] for row in self._query(f"show views in `{schema}`") if not row[2]}
            for _, name, temporary in self._query(f"show tables in `{schema}`"):
                if temporary or (tables is not None and name not in tables):
                    continue
                out.append((schema, name, "VIEW" if name in views else "BASE TABLE"))
        return out

    def table_names(self, schema: str) -> list[str]:
        """The tables (not views) of `schema`, none when it does not exist."""
        wanted = {schema.lower()}
        schemas = [n for n in self._schemas(None) if n.lower() in wanted]
        return [name for _, name, kind in self._relations(schemas, None) if kind == "BASE TABLE"]

    def exists(self, schema: str, table: str, views: bool = True) -> bool:
        """Whether `schema`.`table` exists (a view counts unless `views` is False)."""
        if not self._schemas({schema}):
            return False
        # Spark's `like` takes a pattern (`*` and `|` are special): the names are compared after
        pattern = table.replace("'", "")
        name = table.lower()
        shown = self._query(f"show tables in `{schema}` like '{pattern}'")
        if not any(r[1].lower() == name and not r[2] for r in shown):
            return False
        if views:
            return True
        return not any(
            r[1].lower() == name for r in self._query(f"show views in `{schema}` like '{pattern}'")
        )

    def describe(self, relation: str) -> list[tuple[str, str]]:
        """(name, Spark type) of each column of `relation` (a Spark SQL name, quoted as needed)."""
        columns = []
        for name, kind, *_ in self._query(f"describe table {relation}"):
            if not name or name.startswith("#"):
                break  # partition and detail sections follow a blank row
            columns.append((name, kind))
        return columns

    def tables(self, schemas: set[str] | None, tables: set[str] | None) -> pa.Table:
        """information_schema.tables: table_catalog, table_schema, table_name, table_type."""
        rows = self._relations(self._schemas(schemas), tables)
        return pa.table(
            {
                "table_catalog": pa.array([CATALOG] * len(rows), pa.string()),
                "table_schema": pa.array([r[0] for r in rows], pa.string()),
                "table_name": pa.array([r[1] for r in rows], pa.string()),
                "table_type": pa.array([r[2] for r in rows], pa.string()),
            }
        )

    def columns(self, schemas: set[str] | None, tables: set[str] | None) -> pa.Table:
        """information_schema.columns: table_catalog, table_schema, table_name, column_name,
        ordinal_position (from 1), data_type (DuckDB's name)."""
        rows = []
        for schema, table, _ in self._relations(self._schemas(schemas), tables):
            described = self.describe(f"`{schema}`.`{table}`")
            for position, (name, kind) in enumerate(described, start=1):
                rows.append((schema, table, name, position, duckdb_type(kind)))
        names = ["table_schema", "table_name", "column_name", "ordinal_position", "data_type"]
        types = [pa.string(), pa.string(), pa.string(), pa.int32(), pa.string()]
        arrays = {"table_catalog": pa.array([CATALOG] * len(rows), pa.string())}
        for i, (name, kind) in enumerate(zip(names, types, strict=True)):
            arrays[name] = pa.array([r[i] for r in rows], kind)
        return pa.table(arrays)


def view_name(relation: str) -> str:
    """The temporary view that stands for information_schema.<relation> in one statement."""
    return f"c360_information_schema_{re.sub(r'[^a-z]', '', relation.lower())}"
