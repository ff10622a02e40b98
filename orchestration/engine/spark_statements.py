"""DuckDB statements a Spark Thrift Server cannot run as written, as statements it can (grain: one
parsed statement; pure functions over SQLGlot trees, run by `engine.spark.SparkConnection`).

Spark's managed Parquet tables have no row-level DELETE or UPDATE (those need a table format such
as Delta or Iceberg) and no transactions; its temporary relations are views, which cannot be
inserted into. So:

- a delete or update becomes a rewrite of the table: the rows it keeps (or their updated values)
  into a side table, then `insert overwrite` of the table from it; the rows changed are counted
  first by the statement's own predicate (`changed_rows`);
- a temp table is a real table in the session's scratch schema, and later statements' references
  to its bare name (or `temp.` / `pg_temp.` name) are pointed there;
- `begin` / `commit` / `rollback` run nothing: each statement takes effect when it ends, and the
  steps that publish order their writes so that a rerun after a failure finishes the work
  (docs/scale.md, "Spark: what a step may assume").

Every statement keeps DuckDB's dialect: the Connection translates it (engine.transpile) as any
other. Parameters are bound first, as typed literals (`bind`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlglot import exp

from orchestration.engine.transpile import UntranslatableSQL

READ = "duckdb"
_TEMP_SCHEMAS = frozenset({"temp", "pg_temp"})


def is_transaction_control(tree: exp.Expression) -> bool:
    """`begin` / `commit` / `rollback`: nothing to run on Spark."""
    return isinstance(tree, exp.Transaction | exp.Commit | exp.Rollback)


def bind(
    tree: exp.Expression, parameters: Sequence[Any] | Mapping[str, Any] | None
) -> exp.Expression:
    """`tree` with each placeholder (`?` by position, `$name` by name) replaced by its value as
    a typed literal: a date stays a date and a timestamp a timestamp, which Spark's inserts
    would refuse as text, and a rewrite may repeat any part of the statement."""
    if parameters is None:
        return tree
    placeholders = list(tree.find_all(exp.Placeholder))
    if isinstance(parameters, Mapping):
        for p in placeholders:
            name = p.args.get("this")
            if name not in parameters:
                raise UntranslatableSQL(f"no value for ${name}: {_head(tree)}")
            p.replace(literal(parameters[name]))
        return tree
    values = list(parameters)
    positional = [p for p in placeholders if not p.args.get("this")]
    if len(positional) != len(values):
        raise UntranslatableSQL(
            f"{len(positional)} `?` placeholders, {len(values)} values: {_head(tree)}"
        )
    # values follow the order of the text, which no walk of the tree follows (a select's
    # `limit` is an argument before its `where`)
    positional.sort(key=_text_order(tree, positional))
    for p, value in zip(positional, values, strict=True):
        p.replace(literal(value))
    return tree


def literal(value: Any) -> exp.Expression:
    """A Python value as a SQL literal of its type."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float | Decimal):
        return exp.Literal.number(value)
    if isinstance(value, dt.datetime):
        naive = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        return exp.cast(exp.Literal.string(naive.isoformat(sep=" ")), "timestamp")
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), "date")
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[literal(v) for v in value])
    return exp.Literal.string(str(value))


def _text_order(tree: exp.Expression, placeholders: list[exp.Placeholder]):
    """Sort key of each of `placeholders` (nodes of `tree`): its offset in the statement's text."""
    for i, p in enumerate(placeholders):
        p.set("this", f"c360mark{i}x")
    text = tree.sql(dialect=READ)
    offsets = {id(p): text.index(f"$c360mark{i}x") for i, p in enumerate(placeholders)}
    for p in placeholders:
        p.set("this", None)
    return lambda p: offsets[id(p)]


# A session's scratch schema: c360_session_<UTC start, seconds>_<random>. Its session drops it
# when it closes; one whose process was killed is dropped by a later session once older than
# STALE_SESSION_HOURS (no step holds a session that long: a night's steps take minutes).
SESSION_SCHEMA_PREFIX = "c360_session_"
STALE_SESSION_HOURS = 24
_SESSION_SCHEMA = re.compile(rf"^{SESSION_SCHEMA_PREFIX}(\d{{14}})_[0-9a-f]{{8}}$")


def session_schema(now: dt.datetime, token: str) -> str:
    """The scratch schema name of a session started at `now` (naive UTC), `token` 8 hex digits."""
    return f"{SESSION_SCHEMA_PREFIX}{now:%Y%m%d%H%M%S}_{token}"


def stale_session_schemas(schemas: Iterable[str], now: dt.datetime) -> list[str]:
    """Those of `schemas` that are session scratch schemas started over STALE_SESSION_HOURS
    before `now` (naive UTC): what killed sessions left behind."""
    cutoff = now - dt.timedelta(hours=STALE_SESSION_HOURS)
    stale = []
    for name in schemas:
        match = _SESSION_SCHEMA.match(name.lower())
        if match and dt.datetime.strptime(match[1], "%Y%m%d%H%M%S") < cutoff:
            stale.append(name)
    return stale


@dataclass
class TempScope:
    """The session's temp tables: their bare names, all kept in `schema`."""

    schema: str
    names: set[str]

    def apply(self, tree: exp.Expression) -> exp.Expression:
        """`tree` with temp tables created in, and referenced from, the scratch schema; a
        `create temp table` records its name, a `drop table` of one forgets it."""
        if isinstance(tree, exp.Create) and _is_temp(tree):
            table = tree.find(exp.Table)
            assert table is not None
            self.names.add(table.name)
            for prop in list(tree.find_all(exp.TemporaryProperty)):
                prop.pop()
        ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
        scoped = [
            t
            for t in tree.find_all(exp.Table)
            if self._is_scoped(t) and not (t.name in ctes and not t.args.get("db"))
        ]
        for table in scoped:
            table.set("db", exp.to_identifier(self.schema))
        if isinstance(tree, exp.Drop):
            self.names.difference_update(t.name for t in scoped)
        return tree

    def _is_scoped(self, table: exp.Table) -> bool:
        db = table.text("db").lower()
        return db in _TEMP_SCHEMAS or db == self.schema or (not db and table.name in self.names)


def _is_temp(create: exp.Create) -> bool:
    return create.kind == "TABLE" and any(
        isinstance(p, exp.TemporaryProperty) for p in create.find_all(exp.TemporaryProperty)
    )


@dataclass
class Rewrite:
    """A delete or update as Spark runs it: how many rows it changes (`count_sql`, DuckDB's
    dialect), and the table's new rows (`select_sql`), None when every row is removed."""

    table: str
    count_sql: str
    select_sql: str | None


def delete_rewrite(tree: exp.Delete) -> Rewrite:
    """`delete from t [as a] [where p]` → count where p; keep the rows where p is not true."""
    table, source = _target(tree)
    where = tree.args.get("where")
    if tree.args.get("using"):
        raise UntranslatableSQL(f"`delete … using` on Spark: write `where exists`; {_head(tree)}")
    if where is None:
        return Rewrite(table, f"select count(*) from {source}", None)
    cond = where.this.sql(dialect=READ)
    return Rewrite(
        table,
        f"select count(*) from {source} where {cond}",
        f"select {_alias(tree)}.* from {source} where not coalesce({cond}, false)",
    )


def update_rewrite(tree: exp.Update, columns: Sequence[str]) -> Rewrite:
    """`update t set c = e … [where p]` → count where p; every row with each set column's new
    value where p holds (columns in the table's order)."""
    table, source = _target(tree)
    if tree.args.get("from") or tree.args.get("from_"):
        raise UntranslatableSQL(f"`update … from` on Spark: write a subquery; {_head(tree)}")
    where = tree.args.get("where")
    cond = where.this.sql(dialect=READ) if where is not None else None
    sets: dict[str, str] = {}
    for assignment in tree.expressions:
        column = assignment.this
        sets[column.name.lower()] = assignment.expression.sql(dialect=READ)
    unknown = set(sets) - {c.lower() for c in columns}
    if unknown:
        raise UntranslatableSQL(f"update of unknown columns {sorted(unknown)}: {_head(tree)}")
    alias = _alias(tree)
    select = []
    for c in columns:
        quoted = exp.to_identifier(c, quoted=True).sql(dialect=READ)
        value = sets.get(c.lower())
        if value is None:
            select.append(f"{alias}.{quoted}")
        elif cond is None:
            select.append(f"{value} as {quoted}")
        else:
            select.append(
                f"case when coalesce({cond}, false) then {value} else {alias}.{quoted} end "
                f"as {quoted}"
            )
    count = f"select count(*) from {source}" + (f" where {cond}" if cond else "")
    return Rewrite(table, count, f"select {', '.join(select)} from {source}")


KEY_PROPERTY = "c360.primary_key"


def primary_key(create: exp.Create) -> list[str]:
    """The primary key columns a `create table` declares (inline or as a constraint)."""
    schema = create.this if isinstance(create.this, exp.Schema) else None
    if schema is None:
        return []
    key = [
        column.name
        for column in schema.expressions
        if isinstance(column, exp.ColumnDef)
        and any(isinstance(c.kind, exp.PrimaryKeyColumnConstraint) for c in column.constraints)
    ]
    for constraint in schema.find_all(exp.PrimaryKey):
        key += [e.name for e in constraint.expressions]
    return key


@dataclass
class Upsert:
    """`insert … on conflict` as Spark runs it: either one plain insert of the rows without a
    conflict (`do nothing`), or a rewrite of the table (`do update`)."""

    insert_sql: str | None
    rewrite: Rewrite | None
    count_sql: str | None = None  # rows the plain insert adds


def upsert_rewrite(tree: exp.Insert, columns: Sequence[str], key: Sequence[str]) -> Upsert:
    """`insert into t [(cols)] <rows> on conflict [(k)] do nothing | do update set c = e [where
    w]`: rows whose key is not in `t` are inserted; with `do update` every row of `t` whose key
    is among the new rows gets the set values (`excluded.c` the new row's, `t.c` or `c` the
    row's own), where `w` holds. `key`: the conflict target, else the table's primary key."""
    conflict = tree.args["conflict"]
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    table = target.copy()
    table.set("alias", None)
    name = table.sql(dialect=READ)
    own = target.alias_or_name
    inserted = (
        [c.name for c in tree.this.expressions] if isinstance(tree.this, exp.Schema) else columns
    )
    keys = [k.this.name if isinstance(k, exp.Ordered) else k.name for k in
            conflict.args.get("conflict_keys") or []] or list(key)  # fmt: skip
    if not keys:
        raise UntranslatableSQL(f"`on conflict` without a key on Spark: {_head(tree)}")
    source = tree.expression.sql(dialect=READ)
    names = ", ".join(_q(c) for c in inserted)
    new = f"(select *, true as c360_new from ({source}) as c360_rows({names}))"
    match = " and ".join(f"o.{_q(k)} = n.{_q(k)}" for k in keys)
    fresh = f"select {{}} from {new} n where not exists (select 1 from {name} o where {match})"
    action = str(conflict.args.get("action") or "").upper()
    if "NOTHING" in action:
        select = ", ".join(f"n.{_q(c)}" for c in inserted)
        return Upsert(
            f"insert into {name} ({names}) {fresh.format(select)}",
            None,
            f"select count(*) from ({fresh.format('1')}) a",
        )
    sets = {}
    for assignment in conflict.expressions:
        sets[assignment.this.name.lower()] = _from_rows(assignment.expression, own).sql(
            dialect=READ
        )
    where = conflict.args.get("where")
    cond = "n.c360_new" + (f" and {_from_rows(where.this, own).sql(dialect=READ)}" if where else "")
    kept = []
    for c in columns:
        value = sets.get(c.lower())
        kept.append(
            f"case when coalesce({cond}, false) then {value} else o.{_q(c)} end as {_q(c)}"
            if value is not None
            else f"o.{_q(c)}"
        )
    added = [f"n.{_q(c)}" if c in inserted else f"null as {_q(c)}" for c in columns]
    count = (
        f"select (select count(*) from ({fresh.format('1')}) a) + "
        f"(select count(*) from {name} o join {new} n on {match}"
        + (f" where {_from_rows(where.this, own).sql(dialect=READ)}" if where else "")
        + ")"
    )
    select = (
        f"select {', '.join(kept)} from {name} o left join {new} n on {match} "
        f"union all {fresh.format(', '.join(added))}"
    )
    return Upsert(None, Rewrite(name, count, select))


def _from_rows(expression: exp.Expression, own: str) -> exp.Expression:
    """An `on conflict` expression over the joined rows: `excluded.c` → `n.c`, `<own>.c` and a
    bare `c` → `o.c`."""
    expression = expression.copy()
    for column in list(expression.find_all(exp.Column)):
        qualifier = column.table.lower()
        if qualifier == "excluded":
            column.set("table", exp.to_identifier("n"))
        elif qualifier in ("", own.lower()):
            column.set("table", exp.to_identifier("o"))
    return expression


def _q(column: str) -> str:
    return exp.to_identifier(column, quoted=True).sql(dialect=READ)


def _target(tree: exp.Delete | exp.Update) -> tuple[str, str]:
    """(the table's name, the table with its alias as a from clause), DuckDB's dialect."""
    table = tree.this
    if not isinstance(table, exp.Table):
        raise UntranslatableSQL(f"a {tree.key} of something not a table: {_head(tree)}")
    bare = table.copy()
    bare.set("alias", None)
    return bare.sql(dialect=READ), table.sql(dialect=READ)


def _alias(tree: exp.Delete | exp.Update) -> str:
    table = tree.this
    return table.alias_or_name


def _head(tree: exp.Expression, width: int = 160) -> str:
    text = " ".join(tree.sql(dialect=READ).split())
    return text if len(text) <= width else text[: width - 1] + "…"
