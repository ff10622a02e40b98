"""DuckDB SQL → another engine's SQL, with SQLGlot (grain: one statement text at a time).

SQLGlot maps functions and clauses (`strftime` → `to_char`, `qualify` → a window subquery,
`list` → `array_agg`, `?` → the driver's placeholder) and raises on a function it cannot map.
It passes a few DuckDB statement forms through unchanged although they mean nothing (or
something else) on other engines; those are refused here by name, with what to write instead,
so an untranslatable statement fails when a step is first run on the engine, never halfway.
"""

from __future__ import annotations

import re
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

READ = "duckdb"
# a placeholder while the statement is written: the driver's own marker is put back after `%`
# signs in the text are escaped (psycopg's placeholders are `%s`, so a literal `%` is `%%`)
_PARAM = "c360_param_7f3a"
_NAMED = re.compile(r"\bc360_named_7f3a_(\w+)_end\b")


# DuckDB functions with no Postgres namesake that SQLGlot writes through unchanged
_DUCKDB_ONLY_FUNCTIONS = frozenset({"printf", "list_contains", "arg_max", "arg_min", "hash"})


# DuckDB's to_<unit>(n) interval constructors
_INTERVAL_FUNCTIONS = {
    "to_days": "day", "to_hours": "hour", "to_minutes": "minute", "to_seconds": "second",
    "to_weeks": "week", "to_months": "month", "to_years": "year",
}  # fmt: skip


class UntranslatableSQL(ValueError):
    """A statement of the Python side that the target engine cannot run as written."""


def _refusal(tree: exp.Expression) -> str | None:
    """What in `tree` only DuckDB understands, or None."""
    for insert in tree.find_all(exp.Insert):
        if insert.args.get("alternative"):
            return (
                f"`insert or {insert.args['alternative'].lower()}`: "
                "write `insert … on conflict (key) do …`"
            )
    for create in tree.find_all(exp.Create):
        if create.args.get("replace") and create.args.get("kind", "").upper() == "TABLE":
            return "`create or replace table`: drop the table, then create it"
    for group in tree.find_all(exp.Group):
        if group.args.get("all"):
            return "`group by all`: name the grouping columns"
    for column in tree.find_all(exp.Column):
        if column.name.lower() == "rowid":
            return "`rowid`: DuckDB's row number; use the table's key"
    for star in tree.find_all(exp.Star):
        if star.args.get("except_") or star.args.get("replace") or star.args.get("rename"):
            return "`* exclude / replace / rename`: name the columns"
    for node in tree.find_all(exp.Union, exp.Insert):
        if node.args.get("by_name"):
            return "`by name`: name the columns in order"
    for ordered in tree.find_all(exp.Ordered):
        if isinstance(ordered.this, exp.Var) and ordered.this.name.upper() == "ALL":
            return "`order by all`: name the sort columns"
    if tree.find(exp.Qualify):
        # SQLGlot's subquery moves limit and order inside it and shows its window column
        return "`qualify`: filter a window in a subquery"
    for interval in tree.find_all(exp.Interval):
        # SQLGlot drops an expression's value: `interval (n - 1) month` becomes `interval month`
        if interval.this is not None and not isinstance(interval.this, exp.Literal):
            return "`interval ? day` / `interval (expr) day`: multiply a one-day interval"
    for function in tree.find_all(exp.Anonymous):
        if function.name.lower() in _DUCKDB_ONLY_FUNCTIONS:
            return f"`{function.name}()`: DuckDB only; compute it in Python or a scratch DuckDB"
    for placeholder in tree.find_all(exp.Placeholder):
        if str(placeholder.args.get("this") or "").isdigit():
            return "`$1`: use `?` with a list or `$name` with a dict"
    return None


def _rewrite(tree: exp.Expression, dialect: str) -> exp.Expression:
    """DuckDB functions SQLGlot writes unchanged although `dialect` lacks them, rewritten."""
    if dialect == "postgres":
        # round(x, n) exists for numeric only: the double rounded as numeric, then a double again
        for node in list(tree.find_all(exp.Round)):
            if node.args.get("decimals") is not None:
                inner = exp.Round(
                    this=exp.cast(node.this, "decimal"), decimals=node.args["decimals"]
                )
                node.replace(exp.cast(inner, "double"))
        # array_length(list): Postgres' needs a dimension and is null for an empty array
        for node in list(tree.find_all(exp.ArraySize)):
            node.replace(exp.Anonymous(this="cardinality", expressions=[node.this]))
        # isnan(x): Postgres floats hold NaN but have no isnan; NaN equals only itself there
        for node in list(tree.find_all(exp.IsNan)):
            node.replace(
                exp.EQ(this=node.this, expression=exp.cast(exp.Literal.string("NaN"), "double"))
            )
    # to_days(n) / to_hours(n): DuckDB's intervals of n units; n times one unit elsewhere
    for node in list(tree.find_all(exp.Anonymous, exp.ToDays)):
        name = "to_days" if isinstance(node, exp.ToDays) else node.name.lower()
        unit = _INTERVAL_FUNCTIONS.get(name)
        count = node.this if isinstance(node, exp.ToDays) else (node.expressions or [None])[0]
        if unit and count is not None:
            one = exp.Interval(this=exp.Literal.string("1"), unit=exp.var(unit))
            node.replace(exp.paren(exp.Mul(this=exp.paren(count), expression=one)))
    if dialect == "spark":
        # a Parquet table holds no constraint (key, check, not null): the steps keep keys unique
        # and values valid themselves
        for node in list(tree.find_all(exp.PrimaryKey, exp.CheckColumnConstraint,
                                       exp.NotNullColumnConstraint)):  # fmt: skip
            parent = node.parent
            if isinstance(parent, exp.ColumnConstraint):
                parent.pop()
            else:
                node.pop()
        for node in list(tree.find_all(exp.PrimaryKeyColumnConstraint)):
            node.pop()
        for node in list(tree.find_all(exp.DataType)):
            if node.this == exp.DataType.Type.JSON:
                # JSON is text on Spark, read with its JSON functions
                node.replace(exp.DataType.build("string"))
            elif node.this == exp.DataType.Type.TIMESTAMPTZ:
                # an instant: Spark's `timestamp` is the session's zoneless one (TIMESTAMP_NTZ)
                node.replace(exp.DataType.build("timestamp_ltz", dialect="spark"))
        # quantile_cont(x, q): SQLGlot writes percentile_cont(x, q), which Spark refuses; its
        # percentile(x, q) interpolates linearly between the closest ranks, as quantile_cont
        for node in list(tree.find_all(exp.PercentileCont)):
            if node.expression is not None:
                node.replace(
                    exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
                )
        # regexp_full_match: rlike finds a match anywhere, so the pattern is anchored; at `\z`,
        # since Java's `$` also matches before a final line break
        for node in list(tree.find_all(exp.RegexpFullMatch)):
            anchored = exp.Concat(
                expressions=[
                    exp.Literal.string("^(?:"),
                    node.expression,
                    exp.Literal.string(")\\z"),
                ]
            )
            node.replace(exp.RegexpLike(this=node.this, expression=anchored))
    return tree


@lru_cache(maxsize=4096)
def translate(sql: str, dialect: str) -> tuple[str, ...]:
    """The statements of `sql` (DuckDB's dialect, `?` or `$name` placeholders) in `dialect`'s
    SQL, with `%s` / `%(name)s` placeholders and literal `%` doubled (psycopg's paramstyles). Raises
    UntranslatableSQL naming the construct and the start of the statement."""
    try:
        trees = [t for t in sqlglot.parse(sql, read=READ) if t is not None]
    except SqlglotError as exc:
        raise UntranslatableSQL(f"cannot parse for {dialect}: {exc}; SQL: {_head(sql)}") from exc
    out = []
    for tree in trees:
        reason = _refusal(tree)
        if reason:
            raise UntranslatableSQL(f"cannot run on {dialect}: {reason}; SQL: {_head(sql)}")
        tree = _rewrite(tree, dialect)
        for placeholder in list(tree.find_all(exp.Placeholder)):
            # DuckDB's $name: psycopg's %(name)s, values from a dict ("?" has no name)
            name = placeholder.args.get("this")
            placeholder.replace(exp.var(f"c360_named_7f3a_{name}_end" if name else _PARAM))
        try:
            text = tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
        except SqlglotError as exc:
            raise UntranslatableSQL(f"cannot run on {dialect}: {exc}; SQL: {_head(sql)}") from exc
        text = _NAMED.sub(r"%(\1)s", text.replace("%", "%%"))
        out.append(text.replace(_PARAM, "%s"))
    return tuple(out)


def _head(sql: str, width: int = 160) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[: width - 1] + "…"
