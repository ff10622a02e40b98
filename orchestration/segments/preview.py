"""Look at a segment in the warehouse without building anything (`c360 segments preview|explain`).

Everything is read from a read-only DuckDB connection to the warehouse the last pipeline run
wrote (one as_of: the `as_of` column of marts.customer_360):

- `preview_segment`: one SegmentPreview per segment: its member and holdout counts in
  marts.segment_membership, how many customers its condition alone / after the global exclusion /
  after its excluded segments would give, up to 10 sample members and its overlap with every other
  segment (grain of an Overlap: one other segment).
- `explain_membership`: one SegmentExplanation per (segment, customer): every node of the
  segment's condition tree with its result and the customer's values (grain of a ConditionResult:
  one node of the tree), the global exclusion, excluded segments, holdout bucket, priority group
  and the verdict next to marts.segment_membership.

Conditions are never re-implemented here: every node is compiled with the segment compiler
(`condition_sql`, `segment_sql`) and rendered as dbt renders it on DuckDB (the project's own
`duckdb__` macros, `ref` resolved to the warehouse relation), then run restricted to one customer.
Personal data (customer_360's PII columns) is masked unless `show_pii` is set.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from orchestration.contracts.customer_360 import pii_column_names
from orchestration.contracts.masking import mask_value
from orchestration.contracts.model import ContractError
from orchestration.engine import Connection, dialect_of, table_exists
from orchestration.paths import REPO_ROOT, warehouse_path
from orchestration.segments.compiler import Conditions, bounds_sql, condition_sql, segment_sql
from orchestration.segments.model import GlobalRules, Segment
from orchestration.segments.render import render_duckdb
from orchestration.warehouse import SCHEMAS, connect, engine, server_warehouse

SAMPLE_SIZE = 10
# customer_360 columns classified pii (its contract and trait properties add any new ones)
PII_COLUMNS = frozenset(
    {"first_name", "last_name", "email", "phone", "date_of_birth", "address_line1", "postal_code"}
)
_OP_TEXT = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class PreviewError(ValueError):
    """The request cannot be answered (unknown segment or customer, other as_of, no warehouse)."""


class WarehouseBusy(RuntimeError):
    """Another process (a pipeline run) holds DuckDB's write lock on the warehouse file."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"warehouse busy: a pipeline run is writing {path}; retry when it finishes"
        )
        self.path = path


# --------------------------------------------------------------------------- warehouse access


@contextmanager
def read_only_warehouse(path: Path | None = None) -> Iterator[Connection]:
    """A read-only connection to the warehouse (a consistent snapshot: DuckDB lets no writer in
    while it is open), always closed. Raises WarehouseBusy when a writer holds the lock and
    PreviewError when there is no warehouse."""
    if path is None and engine() != "duckdb":
        with server_warehouse(read_only=True) as con:
            yield con
        return
    db = Path(path) if path else warehouse_path()
    if not db.exists():
        raise PreviewError(
            f"no warehouse at {db}: run `c360 generate` and `c360 run` first "
            "(or point C360_HOME / C360_WAREHOUSE at an existing one)"
        )
    try:
        con = connect(db, read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusy(db) from exc
        raise PreviewError(f"cannot open the warehouse read-only: {exc}") from exc
    try:
        yield con
    finally:
        con.close()


@cache
def pii_columns() -> frozenset[str]:
    """customer_360 columns classified pii/sensitive in its contract or a trait's properties (and
    the fixed list, so a missing or unreadable contract never unmasks anything)."""
    try:
        listed = pii_column_names()
    except ContractError:
        listed = frozenset()
    return PII_COLUMNS | listed


def _relations(con: Connection) -> dict[str, str]:
    """dbt model name -> quoted warehouse relation (schema.table), for `ref`."""
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = current_database()"
    ).fetchall()
    order = {schema: i for i, schema in enumerate(("marts", "intermediate", *SCHEMAS))}
    out: dict[str, str] = {}
    for schema, table in sorted(rows, key=lambda r: (order.get(r[0], len(order)), r[0])):
        out.setdefault(table, f'"{schema}"."{table}"')
    return out


class Renderer:
    """Renders compiled segment SQL as dbt renders it for one as_of: `ref(name)` is the warehouse
    relation, the helpers are the project's macros for the connection's engine."""

    def __init__(self, con: Connection, as_of: dt.date) -> None:
        self.relations = _relations(con)
        self.as_of = as_of
        self.dialect = dialect_of(con)

    def ref(self, name: str) -> str:
        if name not in self.relations:
            raise PreviewError(
                f"{name} is not in the warehouse; run `c360 run` after adding a segment"
            )
        return self.relations[name]

    def render(self, sql: str) -> str:
        return render_duckdb(sql, self.ref, self.as_of, self.dialect)


def warehouse_as_of(con: Connection, requested: dt.date | None = None) -> dt.date:
    """The as_of the warehouse holds (marts.customer_360.as_of of the last run); PreviewError when
    `requested` is another day or there is no customer_360."""
    if not table_exists(con, "marts", "customer_360"):
        raise PreviewError("marts.customer_360 is not in the warehouse; run `c360 run`")
    row = con.execute("select max(as_of) from marts.customer_360").fetchone()
    held = row[0] if row else None
    if held is None:
        raise PreviewError("marts.customer_360 is empty; run `c360 run`")
    if requested is not None and requested != held:
        raise PreviewError(
            f"the warehouse holds as_of {held.isoformat()}, not {requested.isoformat()}: "
            "segments are previewed at the as_of of the last run "
            f"(use --as-of {held.isoformat()} or run `c360 run --as-of {requested.isoformat()}`)"
        )
    return held


def find_segment(segments: list[Segment], name: str) -> Segment:
    """The segment called `name`; PreviewError listing the known names otherwise."""
    for segment in segments:
        if segment.name == name:
            return segment
    known = ", ".join(sorted(s.name for s in segments)) or "(none)"
    raise PreviewError(f"unknown segment {name!r}; known segments: {known}")


# --------------------------------------------------------------------------- descriptions


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value + "'"
    return str(value)


def _comparison_text(operand: str, op: str, value: Any) -> str:
    if op in _OP_TEXT:
        return f"{operand} {_OP_TEXT[op]} {_lit(value)}"
    if op == "between":
        return f"{operand} between {_lit(value[0])} and {_lit(value[1])}"
    if op in ("in", "not_in"):
        return f"{operand} {op.replace('_', ' ')} ({', '.join(_lit(v) for v in value)})"
    if op in ("is_null", "is_not_null"):
        return f"{operand} {op.replace('_', ' ')}"
    return f"{operand} {op.replace('_', ' ')} {_lit(value)}"


def _bounds_text(label: str, bound: dict[str, Any]) -> str:
    """`label` held to a bound as the preview shows it (values as written, not SQL literals)."""
    return bounds_sql(label, bound, literal=str)


def _window_text(spec: dict[str, Any]) -> str:
    if "within_last_days" in spec:
        return f"in the last {spec['within_last_days']} days"
    if "days_ago_between" in spec:
        near, far = spec["days_ago_between"]
        return f"{near}-{far} days ago"
    return "ever"


def describe_condition(cond: dict[str, Any]) -> str:
    """One line describing a condition node (composites: 'all of' / 'any of' / 'not')."""
    if "all" in cond:
        return "all of"
    if "any" in cond:
        return "any of"
    if "not" in cond:
        return "not"
    if "segment" in cond:
        return f"segment: in {cond['segment']}"
    if "eligible" in cond:
        return f"eligible: {cond['eligible']} (reachable and marketing-consented)"
    if "event" in cond:
        spec = cond["event"]
        text = f"event {spec['name']}"
        filters = [
            _comparison_text(
                f"{f['property']}", *next((k, v) for k, v in f.items() if k != "property")
            )
            for f in spec.get("where") or []
        ]
        if filters:
            text += " where " + " and ".join(filters)
        if spec.get("occurrence"):
            return f"{text}: {spec['occurrence']} occurrence {_window_text(spec)}"
        count = _bounds_text("count", spec.get("count") or {"at_least": 1})
        return f"{text}: {count}, {_window_text(spec)}"
    if "orders" in cond:
        spec = cond["orders"]
        text = "orders"
        if "product_id" in spec:
            text += f" of product {_lit(spec['product_id'])}"
        if "category" in spec:
            text += f" in category {_lit(spec['category'])}"
        parts = []
        if "count" in spec or "revenue" not in spec:
            parts.append(_bounds_text("count", spec.get("count") or {"at_least": 1}))
        if "revenue" in spec:
            parts.append(_bounds_text("revenue", spec["revenue"]))
        return f"{text}: {' and '.join(parts)}, {_window_text(spec)}"
    op, value = next((k, v) for k, v in cond.items() if k != "trait")
    return "trait: " + _comparison_text(cond["trait"], op, value)


def leaf_conditions(cond: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaves (trait, event, orders, segment, eligible) of a condition tree, in order."""
    if "all" in cond or "any" in cond:
        return [leaf for c in cond.get("all", cond.get("any")) for leaf in leaf_conditions(c)]
    if "not" in cond:
        return leaf_conditions(cond["not"])
    return [cond]


# --------------------------------------------------------------------------- preview


@dataclass(frozen=True)
class SampleMember:
    """One member of the segment (grain: one row of marts.segment_membership) with a few traits."""

    customer_id: str
    is_holdout: bool
    country_code: str | None
    lifetime_revenue: decimal.Decimal | None
    email: str | None  # raw: format_preview masks it unless show_pii


@dataclass(frozen=True)
class Overlap:
    """Members shared with one other segment (grain: one other segment, at the same as_of)."""

    segment_name: str
    shared: int


@dataclass(frozen=True)
class Funnel:
    """Customers (grain: customer_360 rows at as_of) left after each step of the segment."""

    matching_condition: int  # the condition tree alone
    after_global_exclusion: int  # minus _global.yml's exclude
    after_excluded_segments: int  # minus exclude_segments = rows of marts.segment__<name>
    after_priority_group: int  # = rows of marts.segment_membership for the segment


@dataclass(frozen=True)
class SegmentPreview:
    """A segment at the warehouse's as_of (grain: one segment)."""

    name: str
    description: str
    as_of: dt.date
    members: int
    holdout: int
    holdout_share: float
    priority_group: tuple[str, tuple[str, ...]] | None
    exclude_segments: tuple[str, ...]
    funnel: Funnel
    samples: tuple[SampleMember, ...]
    overlaps: tuple[Overlap, ...]


def _priority_group(segment: Segment, rules: GlobalRules) -> tuple[str, tuple[str, ...]] | None:
    for group, names in rules.priority_groups.items():
        if segment.name in names:
            return group, tuple(names)
    return None


def _customers_query(conditions: Conditions, select: str, where: str = "") -> str:
    """Compiled-SQL query over customer_360 aliased `customers` with the conditions' CTEs."""
    return (
        "with customers as (\n    select * from {{ ref('customer_360') }}\n),\n\n"
        + conditions.sql()
        + f"answer as (\n    select\n        {select}\n    from customers"
        + conditions.joins()
        + (f"\n    where {where}" if where else "")
        + "\n)\n\nselect * from answer\n"
    )


def preview_segment(
    con: Connection,
    segments: list[Segment],
    rules: GlobalRules,
    name: str,
    as_of: dt.date | None = None,
) -> SegmentPreview:
    """Counts, funnel, samples and overlaps of segment `name` at the warehouse's as_of
    (`as_of`, when given, must be that day)."""
    segment = find_segment(segments, name)
    held = warehouse_as_of(con, as_of)
    renderer = Renderer(con, held)
    membership = renderer.ref("segment_membership")
    members, holdout = con.execute(
        f"select count(*), count(*) filter (where is_holdout) from {membership} "
        "where segment_name = ? and as_of = ?",
        [segment.name, held],
    ).fetchone()
    conditions = Conditions()
    cond = f"coalesce({condition_sql(segment.condition, conditions)}, false)"
    glob = (
        f"coalesce({condition_sql(rules.exclude, conditions)}, false)" if rules.exclude else "false"
    )
    sql = _customers_query(
        conditions,
        f"count(*) filter (where {cond}) as matching,\n"
        f"        count(*) filter (where {cond} and not {glob}) as after_global",
    )
    matching, after_global = con.execute(renderer.render(sql)).fetchone()
    (after_excluded,) = con.execute(
        f"select count(*) from {renderer.ref(f'segment__{segment.name}')}"
    ).fetchone()
    samples = con.execute(
        f"select m.customer_id, m.is_holdout, c.country_code, c.lifetime_revenue, c.email "
        f"from {membership} as m "
        f"left join {renderer.ref('customer_360')} as c on m.customer_id = c.customer_id "
        "where m.segment_name = ? and m.as_of = ? order by m.customer_id limit ?",
        [segment.name, held, SAMPLE_SIZE],
    ).fetchall()
    shared = dict(
        con.execute(
            f"select other.segment_name, count(distinct this.customer_id) "
            f"from {membership} as this inner join {membership} as other "
            "on this.customer_id = other.customer_id and other.segment_name <> this.segment_name "
            "and other.as_of = this.as_of "
            "where this.segment_name = ? and this.as_of = ? group by other.segment_name",
            [segment.name, held],
        ).fetchall()
    )
    others = sorted({s.name for s in segments if s.name != segment.name} | set(shared))
    overlaps = sorted(
        (Overlap(o, int(shared.get(o, 0))) for o in others),
        key=lambda o: (-o.shared, o.segment_name),
    )
    return SegmentPreview(
        name=segment.name,
        description=segment.description,
        as_of=held,
        members=int(members),
        holdout=int(holdout),
        holdout_share=segment.holdout,
        priority_group=_priority_group(segment, rules),
        exclude_segments=segment.exclude_segments,
        funnel=Funnel(int(matching), int(after_global), int(after_excluded), int(members)),
        samples=tuple(SampleMember(*row) for row in samples),
        overlaps=tuple(overlaps),
    )


# --------------------------------------------------------------------------- explain


@dataclass(frozen=True)
class Value:
    """One of the customer's values behind a condition result (raw: formatting masks PII)."""

    name: str
    value: Any
    is_pii: bool = False


@dataclass(frozen=True)
class ConditionResult:
    """One node of a condition tree for one customer (grain: one node, in tree order).

    `passed` is the node's compiled SQL value: None is SQL null, which a segment counts as false
    (and `not` turns into true)."""

    depth: int
    description: str
    is_leaf: bool
    passed: bool | None
    values: tuple[Value, ...]


@dataclass(frozen=True)
class SegmentCheck:
    """Whether the customer is in one related segment's model, marts.segment__<name>, i.e.
    before priority groups (grain: one segment)."""

    segment_name: str
    is_member: bool


@dataclass(frozen=True)
class SegmentExplanation:
    """Why one customer is or is not in one segment at as_of (grain: one segment x customer)."""

    segment_name: str
    description: str
    customer_id: str
    as_of: dt.date
    conditions: tuple[ConditionResult, ...]
    global_exclusion: tuple[ConditionResult, ...]  # empty: no global exclusion
    global_rules_path: Path | None
    excluded_segments: tuple[SegmentCheck, ...]
    qualifies: bool  # the compiled segment model (segment_sql) returns the customer
    in_segment_table: bool  # marts.segment__<name> (the last run) holds the customer
    holdout_bucket: int
    holdout_threshold: int
    priority_group: tuple[str, tuple[str, ...]] | None
    higher_priority: tuple[SegmentCheck, ...]  # the group's segments ranked above this one
    in_membership: bool  # marts.segment_membership holds (customer, segment) at as_of
    membership_is_holdout: bool | None

    @property
    def condition_passed(self) -> bool:
        return bool(self.conditions and self.conditions[0].passed)

    @property
    def globally_excluded(self) -> bool:
        return bool(self.global_exclusion and self.global_exclusion[0].passed)

    @property
    def outranked_by(self) -> str | None:
        return next((c.segment_name for c in self.higher_priority if c.is_member), None)

    @property
    def is_holdout(self) -> bool:
        return self.holdout_bucket < self.holdout_threshold

    @property
    def verdict(self) -> bool:
        """In the segment: the compiled model returns the customer and no segment ranked above
        it in its priority group does."""
        return self.qualifies and self.outranked_by is None

    @property
    def agrees(self) -> bool:
        return self.verdict == self.in_membership


def _walk(cond: dict[str, Any], depth: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """The nodes of a condition tree, pre-order, with their depth."""
    yield depth, cond
    if "all" in cond or "any" in cond:
        for child in cond.get("all", cond.get("any")):
            yield from _walk(child, depth + 1)
    elif "not" in cond:
        yield from _walk(cond["not"], depth + 1)


def _leaf_values(cond: dict[str, Any], cte: str | None) -> list[tuple[str, str, bool]]:
    """(label, SQL expression, is_pii) of the values a leaf is decided on; `cte`: the
    per-customer CTE condition_sql registered for it."""
    if "trait" in cond:
        column = cond["trait"]
        return [(column, f"customers.{column}", column in pii_columns())]
    if "eligible" in cond:
        ch = cond["eligible"]
        return [
            (f"is_{ch}_reachable", f"customers.is_{ch}_reachable", False),
            (f"is_{ch}_marketing_consented", f"customers.is_{ch}_marketing_consented", False),
        ]
    if "segment" in cond:
        return [(f"in segment__{cond['segment']}", f"{cte}.customer_id is not null", False)]
    if "event" in cond:
        occurrence = cond["event"].get("occurrence")
        if occurrence:
            return [(f"{occurrence} day", f"{cte}.event_day", False)]
        return [("events", f"coalesce({cte}.events, 0)", False)]
    return [
        ("orders", f"coalesce({cte}.orders, 0)", False),
        ("revenue", f"coalesce({cte}.revenue, 0)", False),
    ]


def _compile_tree(
    cond: dict[str, Any], conditions: Conditions, prefix: str
) -> tuple[list[str], list[tuple[int, dict[str, Any], str, list[tuple[str, str, bool]]]]]:
    """Compile every node of a tree (each with condition_sql) into select-list items; returns
    (select items, [(depth, node, column alias, [(label, alias, is_pii)])])."""
    items: list[str] = []
    nodes = []
    for i, (depth, node) in enumerate(_walk(cond)):
        before = len(conditions.ctes)
        expr = condition_sql(node, conditions, indent=8)
        alias = f"{prefix}{i}"
        items.append(f"{expr} as {alias}")
        values = []
        if not any(k in node for k in ("all", "any", "not")):
            cte = conditions.ctes[-1][0] if len(conditions.ctes) > before else None
            for j, (label, sql, is_pii) in enumerate(_leaf_values(node, cte)):
                items.append(f"{sql} as {alias}_v{j}")
                values.append((label, f"{alias}_v{j}", is_pii))
        nodes.append((depth, node, alias, values))
    return items, nodes


def _results(nodes: list, row: dict[str, Any]) -> tuple[ConditionResult, ...]:
    return tuple(
        ConditionResult(
            depth=depth,
            description=describe_condition(node),
            is_leaf=not any(k in node for k in ("all", "any", "not")),
            passed=row[alias],
            values=tuple(Value(label, row[col], is_pii) for label, col, is_pii in values),
        )
        for depth, node, alias, values in nodes
    )


def _in_table(con: Connection, relation: str, customer_id: str) -> bool:
    row = con.execute(
        f"select count(*) from {relation} where customer_id = ?", [customer_id]
    ).fetchone()
    return bool(row and row[0])


def explain_membership(
    con: Connection,
    segments: list[Segment],
    rules: GlobalRules,
    name: str,
    customer_id: str,
    as_of: dt.date | None = None,
) -> SegmentExplanation:
    """Every condition of segment `name` for one customer at the warehouse's as_of, then the
    global exclusion, excluded segments, holdout and priority group, next to
    marts.segment_membership. Each node is compiled by the segment compiler and run restricted
    to this customer (`where customers.customer_id = ?`)."""
    segment = find_segment(segments, name)
    held = warehouse_as_of(con, as_of)
    renderer = Renderer(con, held)
    conditions = Conditions()
    items, tree = _compile_tree(segment.condition, conditions, "node_")
    glob_tree: list = []
    if rules.exclude:
        glob_items, glob_tree = _compile_tree(rules.exclude, conditions, "global_")
        items += glob_items
    items.append(
        f"{{{{ hash_bucket(\"customers.customer_id || ':{segment.name}'\") }}}} as holdout_bucket"
    )
    sql = renderer.render(
        _customers_query(conditions, ",\n        ".join(items), "customers.customer_id = ?")
    )
    cursor = con.execute(sql, [customer_id])
    columns = [d[0] for d in cursor.description]
    fetched = cursor.fetchone()
    if fetched is None:
        raise PreviewError(
            f"unknown customer_id {customer_id!r}: not in marts.customer_360 at as_of "
            f"{held.isoformat()} (a merged-away id? try `c360 identity explain {customer_id}`)"
        )
    row = dict(zip(columns, fetched, strict=True))
    model_sql = renderer.render(segment_sql(segment, rules))
    qualifies = bool(
        con.execute(
            f"select count(*) from (\n{model_sql}\n) as model where model.customer_id = ?",
            [customer_id],
        ).fetchone()[0]
    )
    group = _priority_group(segment, rules)
    higher = group[1][: group[1].index(segment.name)] if group else ()
    membership = con.execute(
        f"select is_holdout from {renderer.ref('segment_membership')} "
        "where segment_name = ? and customer_id = ? and as_of = ?",
        [segment.name, customer_id, held],
    ).fetchone()
    return SegmentExplanation(
        segment_name=segment.name,
        description=segment.description,
        customer_id=customer_id,
        as_of=held,
        conditions=_results(tree, row),
        global_exclusion=_results(glob_tree, row),
        global_rules_path=rules.path,
        excluded_segments=tuple(
            SegmentCheck(o, _in_table(con, renderer.ref(f"segment__{o}"), customer_id))
            for o in segment.exclude_segments
        ),
        qualifies=qualifies,
        in_segment_table=_in_table(con, renderer.ref(f"segment__{segment.name}"), customer_id),
        holdout_bucket=int(row["holdout_bucket"]),
        holdout_threshold=round(segment.holdout * 10000),
        priority_group=group,
        higher_priority=tuple(
            SegmentCheck(h, _in_table(con, renderer.ref(f"segment__{h}"), customer_id))
            for h in higher
        ),
        in_membership=membership is not None,
        membership_is_holdout=None if membership is None else bool(membership[0]),
    )


# --------------------------------------------------------------------------- formatting


def _show(value: Any, is_pii: bool = False, show_pii: bool = False) -> str:
    if value is None:
        return "null"
    if is_pii and not show_pii:
        return mask_value(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _funnel_lines(p: SegmentPreview) -> list[str]:
    f = p.funnel
    group = (
        f"priority group {p.priority_group[0]} ({' > '.join(p.priority_group[1])})"
        if p.priority_group
        else "priority group (none)"
    )
    steps = [
        ("condition alone", f.matching_condition, None),
        ("minus the global exclusion", f.after_global_exclusion, f.matching_condition),
        (
            f"minus excluded segments ({', '.join(p.exclude_segments) or 'none'})",
            f.after_excluded_segments,
            f.after_global_exclusion,
        ),
        (f"minus {group}", f.after_priority_group, f.after_excluded_segments),
    ]
    width = max(len(label) for label, _, _ in steps)
    return [
        f"  {label:<{width}}  {count:>8,}" + ("" if before is None else f"   (-{before - count:,})")
        for label, count, before in steps
    ]


def format_preview(preview: SegmentPreview, show_pii: bool = False) -> str:
    """The preview as text; emails masked unless `show_pii`."""
    p = preview
    lines = [
        f"Segment {p.name} at as_of {p.as_of.isoformat()}: {p.description}",
        f"  members        {p.members:>8,}   (marts.segment_membership)",
        f"  holdout        {p.holdout:>8,}   (target share {p.holdout_share:.0%}, never activated)",
        f"  activatable    {p.members - p.holdout:>8,}",
        "",
        "Customers at each step (without a step, the segment would have the count above it):",
        *_funnel_lines(p),
        "",
        f"Sample members (first {SAMPLE_SIZE} by customer_id"
        + ("" if show_pii else "; email masked")
        + "):",
    ]
    header = f"  {'customer_id':<24}{'holdout':<9}{'country':<9}{'lifetime_revenue':>17}  email"
    lines.append(header)
    for s in p.samples:
        lines.append(
            f"  {s.customer_id:<24}{_yes(s.is_holdout):<9}{_show(s.country_code):<9}"
            f"{_show(s.lifetime_revenue):>17}  {_show(s.email, True, show_pii)}"
        )
    if not p.samples:
        lines.append("  (no members)")
    lines += ["", "Overlap with other segments (shared members):"]
    for o in p.overlaps:
        share = f"{o.shared / p.members:.0%} of {p.name}" if p.members else "-"
        lines.append(f"  {o.segment_name:<28}{o.shared:>8,}   {share}")
    if not p.overlaps:
        lines.append("  (no other segments)")
    return "\n".join(lines) + "\n"


def _condition_lines(
    results: tuple[ConditionResult, ...], show_pii: bool, indent: int = 2
) -> list[str]:
    out = []
    for r in results:
        mark = {True: "PASS", False: "FAIL", None: "NULL"}[r.passed]
        values = ", ".join(f"{v.name}={_show(v.value, v.is_pii, show_pii)}" for v in r.values)
        line = f"{' ' * (indent + 2 * r.depth)}[{mark}] {r.description}"
        out.append(line + (f"   ({values})" if values else ""))
    return out


def format_explanation(e: SegmentExplanation, show_pii: bool = False) -> str:
    """The explanation as text: the condition tree, then each later step, then the verdict;
    PII trait values masked unless `show_pii`."""
    lines = [
        f"Segment {e.segment_name} for customer {e.customer_id} at as_of {e.as_of.isoformat()}",
        f"  {e.description}",
        "",
        "Condition tree ([NULL]: SQL null, counts as not passed):",
        *_condition_lines(e.conditions, show_pii),
        f"  => condition {'passed' if e.condition_passed else 'NOT passed'}",
        "",
    ]
    path = e.global_rules_path
    where = (
        f" ({path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path})"
        if path
        else ""
    )
    if e.global_exclusion:
        lines += [
            f"Global exclusion{where}:",
            *_condition_lines(e.global_exclusion, show_pii),
            f"  => {'EXCLUDED from every segment' if e.globally_excluded else 'not excluded'}",
        ]
    else:
        lines.append("Global exclusion: none")
    if e.excluded_segments:
        checks = ", ".join(
            f"{c.segment_name}: {'member -> excluded' if c.is_member else 'not a member'}"
            for c in e.excluded_segments
        )
        lines.append(f"Excluded segments: {checks}")
    else:
        lines.append("Excluded segments: none")
    lines.append(
        f"Segment model (compiled SQL): {'qualifies' if e.qualifies else 'does not qualify'}; "
        f"marts.segment__{e.segment_name} holds the customer: {_yes(e.in_segment_table)}"
    )
    pct = e.holdout_threshold / 100
    lines.append(
        f"Holdout: bucket {e.holdout_bucket} vs threshold {e.holdout_threshold} ({pct:g}%) -> "
        + ("held out (never activated)" if e.is_holdout else "not held out")
    )
    if e.priority_group:
        group, order = e.priority_group
        outcome = (
            f"outranked by {e.outranked_by}"
            if e.outranked_by
            else f"kept (rank {order.index(e.segment_name) + 1})"
        )
        if not e.qualifies:
            outcome = "not applicable (does not qualify)"
        lines.append(f"Priority group {group} ({' > '.join(order)}): {outcome}")
    else:
        lines.append("Priority group: none")
    membership = (
        f"member, is_holdout={_show(e.membership_is_holdout)}"
        if e.in_membership
        else "not a member"
    )
    lines += [
        "",
        f"Verdict: {'IN' if e.verdict else 'NOT in'} {e.segment_name}",
        f"marts.segment_membership: {membership} -> "
        + (
            "agrees"
            if e.agrees
            else "DISAGREES (the warehouse was built from other segment YAML; run `c360 run`)"
        ),
    ]
    return "\n".join(lines) + "\n"
