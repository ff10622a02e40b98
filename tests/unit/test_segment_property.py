"""Property: for random rule trees over random customers, events and orders, the compiled segment
SQL (through the real int_segments__* models and macros, in DuckDB) selects exactly the customers
an independent plain-Python evaluator selects from the raw rows. The evaluator shares no code with
the compiler: its own local-date arithmetic (zoneinfo), windows and SQL three-valued logic."""

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.paths import dbt_project_dir
from orchestration.segments.compiler import segment_sql
from orchestration.segments.model import Segment
from orchestration.segments.render import render_duckdb

AS_OF = dt.date(2026, 11, 21)
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", None]
TIERS = ["bronze", "silver", "gold", None]
EVENTS = ["cart_add", "page"]
SKUS = ["A", "B"]
CATEGORIES = ["shoes", "bags"]

# --- random data ------------------------------------------------------------------------------

# whole days around as_of at times of day near midnight somewhere (UTC 23:30 is the next day in
# Berlin and Tokyo, UTC 03:30 still the day before in New York): window and zone boundaries
timestamps = st.tuples(
    st.integers(min_value=-13, max_value=1),
    st.sampled_from([(0, 30), (3, 30), (12, 0), (15, 30), (23, 30), (23, 59)]),
).map(lambda t: dt.datetime(2026, 11, 21, *t[1]) + dt.timedelta(days=t[0]))
customers = st.lists(
    st.fixed_dictionaries(
        {
            "time_zone": st.sampled_from(ZONES),
            "lifetime_revenue": st.one_of(st.none(), st.integers(0, 1000)),
            "loyalty_tier": st.sampled_from(TIERS),
        }
    ),
    min_size=1,
    max_size=8,
)
events = st.lists(
    st.tuples(
        st.integers(0, 7),
        st.sampled_from(EVENTS),
        st.sampled_from(SKUS),
        st.integers(0, 50),
        timestamps,
    ),
    min_size=3,
    max_size=30,
)
orders = st.lists(
    st.tuples(
        st.integers(0, 7),
        timestamps,
        st.integers(1, 400),
        st.sampled_from(CATEGORIES),
        st.booleans(),
    ),
    max_size=15,
)

# --- random rule trees (grammar v1) -----------------------------------------------------------

windows = st.one_of(
    st.just({}),
    st.integers(1, 10).map(lambda n: {"within_last_days": n}),
    st.tuples(st.integers(0, 6), st.integers(0, 12)).map(
        lambda t: {"days_ago_between": [min(t), max(t)]}
    ),
)
bounds = st.one_of(
    st.integers(0, 3).map(lambda n: {"at_least": n}),
    st.integers(0, 3).map(lambda n: {"at_most": n}),
    st.tuples(st.integers(0, 2), st.integers(0, 3)).map(
        lambda t: {"at_least": t[0], "at_most": t[0] + t[1]}
    ),
)
trait_conditions = st.one_of(
    st.tuples(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), st.integers(0, 1000)).map(
        lambda t: {"trait": "lifetime_revenue", t[0]: t[1]}
    ),
    st.tuples(st.integers(0, 500), st.integers(0, 500)).map(
        lambda t: {"trait": "lifetime_revenue", "between": [min(t), max(t)]}
    ),
    st.sampled_from(["is_null", "is_not_null"]).map(lambda op: {"trait": "loyalty_tier", op: True}),
    st.tuples(
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(TIERS[:3]), min_size=1, max_size=2, unique=True),
    ).map(lambda t: {"trait": "loyalty_tier", t[0]: t[1]}),
    st.sampled_from(["contains", "starts_with"]).map(lambda op: {"trait": "loyalty_tier", op: "s"}),
)


@st.composite
def event_conditions(draw):
    spec = {"name": draw(st.sampled_from(EVENTS)), **draw(windows)}
    if draw(st.booleans()):
        spec["where"] = [
            draw(
                st.one_of(
                    st.sampled_from(SKUS).map(lambda s: {"property": "sku", "eq": s}),
                    st.integers(0, 50).map(lambda n: {"property": "price", "gte": n}),
                )
            )
        ]
    kind = draw(st.sampled_from(["count", "occurrence", "default"]))
    if kind == "count":
        spec["count"] = draw(bounds)
    elif kind == "occurrence":
        spec["occurrence"] = draw(st.sampled_from(["first", "last"]))
    return {"event": spec}


@st.composite
def order_conditions(draw):
    spec = dict(draw(windows))
    if draw(st.booleans()):
        spec["category"] = draw(st.sampled_from(CATEGORIES))
    measure = draw(st.sampled_from(["count", "revenue", "both"]))
    if measure in ("count", "both"):
        spec["count"] = draw(bounds)
    if measure in ("revenue", "both"):
        spec["revenue"] = draw(
            st.one_of(
                st.integers(0, 600).map(lambda n: {"at_least": n}),
                st.integers(0, 600).map(lambda n: {"at_most": n}),
            )
        )
    return {"orders": spec}


leaves = st.one_of(event_conditions(), order_conditions(), trait_conditions)
conditions = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=5,
)

# --- the independent evaluator ----------------------------------------------------------------


def local_day(utc: dt.datetime, zone: str | None) -> dt.date:
    return utc.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(zone or "UTC")).date()


def known(utc: dt.datetime, zone: str | None) -> bool:
    """By the end of as_of in UTC and on or before as_of in the customer's zone."""
    return utc <= dt.datetime(2026, 11, 21, 23, 59, 59) and local_day(utc, zone) <= AS_OF


def in_window(day: dt.date, spec: dict) -> bool:
    if "within_last_days" in spec:
        return AS_OF - dt.timedelta(days=spec["within_last_days"] - 1) <= day <= AS_OF
    if "days_ago_between" in spec:
        near, far = spec["days_ago_between"]
        return AS_OF - dt.timedelta(days=far) <= day <= AS_OF - dt.timedelta(days=near)
    return True


def within(n: float, bound: dict) -> bool:
    return n >= bound.get("at_least", -1e18) and n <= bound.get("at_most", 1e18)


def and3(values):
    values = list(values)
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def or3(values):
    values = list(values)
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def evaluate(cond: dict, c: dict) -> bool | None:
    if "all" in cond:
        return and3(evaluate(x, c) for x in cond["all"])
    if "any" in cond:
        return or3(evaluate(x, c) for x in cond["any"])
    if "not" in cond:
        return not bool(evaluate(cond["not"], c))  # not coalesce(x, false)
    if "trait" in cond:
        value = c[cond["trait"]]
        op, arg = next((k, v) for k, v in cond.items() if k != "trait")
        if op == "is_null":
            return value is None
        if op == "is_not_null":
            return value is not None
        if value is None:
            return None
        return {
            "eq": lambda: value == arg, "ne": lambda: value != arg, "gt": lambda: value > arg,
            "gte": lambda: value >= arg, "lt": lambda: value < arg, "lte": lambda: value <= arg,
            "between": lambda: arg[0] <= value <= arg[1], "in": lambda: value in arg,
            "not_in": lambda: value not in arg, "contains": lambda: arg in value,
            "starts_with": lambda: value.startswith(arg),
        }[op]()  # fmt: skip
    if "event" in cond:
        spec = cond["event"]
        days = [
            local_day(ts, c["time_zone"])
            for name, sku, price, ts in c["events"]
            if name == spec["name"]
            and known(ts, c["time_zone"])
            and all(
                (f["property"] == "sku" and sku == f["eq"])
                or (f["property"] == "price" and price >= f["gte"])
                for f in spec.get("where", [])
            )
        ]
        if "occurrence" in spec:
            if not days:
                return None if ("within_last_days" in spec or "days_ago_between" in spec) else False
            return in_window(min(days) if spec["occurrence"] == "first" else max(days), spec)
        return within(sum(in_window(d, spec) for d in days), spec.get("count", {"at_least": 1}))
    spec = cond["orders"]
    picked = [
        amount
        for ts, amount, category, is_revenue in c["orders"]
        if is_revenue
        and known(ts, c["time_zone"])
        and in_window(local_day(ts, c["time_zone"]), spec)
        and spec.get("category", category) == category
    ]
    checks = []
    if "count" in spec or "revenue" not in spec:
        checks.append(within(len(picked), spec.get("count", {"at_least": 1})))
    if "revenue" in spec:
        checks.append(within(sum(picked), spec["revenue"]))
    return all(checks)


# --- the SQL path -----------------------------------------------------------------------------


TABLES = {
    "stg_web__events": "raw_events", "stg_shop__orders": "raw_orders",
    # the incremental mirrors hold the staged rows (latest version per key)
    "int_activity__web_events": "raw_events", "int_activity__orders": "raw_orders",
    "stg_shop__order_lines": "raw_order_lines", "customer_id_map": "customer_id_map",
    "customer_360": "customer_360", "int_segments__events": "int_segments__events",
    "int_segments__orders": "int_segments__orders",
    "int_segments__order_lines": "int_segments__order_lines",
}  # fmt: skip


def _render(text: str) -> str:
    return render_duckdb(text, lambda name: TABLES[name], AS_OF)


def _load(con, people) -> None:
    con.execute(
        "create table customer_360 (customer_id varchar, time_zone varchar, is_erased boolean,"
        " lifetime_revenue double, loyalty_tier varchar)"
    )
    con.execute(
        "create table customer_id_map (source varchar, entity varchar, source_record_id varchar,"
        " customer_id varchar)"
    )
    con.execute(
        "create table raw_events (event_id varchar, anonymous_id varchar, event_name varchar,"
        " properties varchar, occurred_at timestamp)"
    )
    con.execute(
        "create table raw_orders (order_id varchar, shop_customer_id varchar, ordered_at timestamp,"
        " is_revenue boolean, total_amount double)"
    )
    con.execute(
        "create table raw_order_lines (order_id varchar, order_line_id varchar, product_id varchar,"
        " product_category varchar, line_amount double)"
    )
    for i, c in enumerate(people):
        cid = f"c{i}"
        con.execute(
            "insert into customer_360 values (?, ?, false, ?, ?)",
            [cid, c["time_zone"], c["lifetime_revenue"], c["loyalty_tier"]],
        )
        con.execute(
            "insert into customer_id_map values ('web', 'anonymous_ids', ?, ?)", [f"a{i}", cid]
        )
        con.execute(
            "insert into customer_id_map values ('shop', 'customers', ?, ?)", [f"s{i}", cid]
        )
        for k, (name, sku, price, ts) in enumerate(c["events"]):
            con.execute(
                "insert into raw_events values (?, ?, ?, ?, ?)",
                [f"e{i}_{k}", f"a{i}", name, json.dumps({"sku": sku, "price": price}), ts],
            )
        for k, (ts, amount, category, is_revenue) in enumerate(c["orders"]):
            con.execute(
                "insert into raw_orders values (?, ?, ?, ?, ?)",
                [f"o{i}_{k}", f"s{i}", ts, is_revenue, amount],
            )
            con.execute(
                "insert into raw_order_lines values (?, ?, 'p', ?, ?)",
                [f"o{i}_{k}", f"l{i}_{k}", category, amount],
            )
    models = dbt_project_dir() / "models/intermediate/segments"
    for model in ("int_segments__events", "int_segments__orders", "int_segments__order_lines"):
        sql = _render((models / f"{model}.sql").read_text())
        # the stand-in raw_orders holds revenue orders' flag like stg_shop__orders
        con.execute(f"create table {model} as {sql}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customers, events, orders, conditions)
def test_compiled_sql_agrees_with_an_independent_evaluator(people, event_rows, order_rows, cond):
    for c in people:
        c["events"], c["orders"] = [], []
    for i, name, sku, price, ts in event_rows:
        people[i % len(people)]["events"].append((name, sku, price, ts))
    for i, ts, amount, category, is_revenue in order_rows:
        people[i % len(people)]["orders"].append((ts, amount, category, is_revenue))
    con = duckdb.connect()
    _load(con, people)
    segment = Segment("prop", "property test", cond, (), (), 0.0, Path("prop.yml"))
    sql = _render(segment_sql(segment))
    got = sorted(r[0] for r in con.execute(f"select customer_id from ({sql})").fetchall())
    expected = sorted(f"c{i}" for i, c in enumerate(people) if evaluate(cond, c) is True)
    assert got == expected, (cond, sql)
