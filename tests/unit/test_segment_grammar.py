"""Segment grammar v1: precise validation errors (file, line, field), and the compiled SQL of
event, order, segment-reference and global rules checked on hand-computed cases in DuckDB."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import jsonschema
import pytest

from orchestration.segments.compiler import membership_sql, segment_sql
from orchestration.segments.model import (
    SCHEMA_PATH,
    GlobalRules,
    SegmentError,
    load_all,
    load_global,
    load_segment,
)
from orchestration.segments.render import render_duckdb

AS_OF = "2026-11-21"


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.yml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "all:\n  - event:\n      name: cart_add\n      within_last_days: 2\n      days_ago_between: [1, 3]\n",
            ":5: all[0].event: give within_last_days or days_ago_between, not both",
        ),
        (
            "all:\n  - event:\n      name: cart_add\n      count: {at_least: 1}\n      occurrence: first\n",
            ":5: all[0].event: give count or occurrence, not both",
        ),
        (
            "all:\n  - trait: lifetime_revenue\n    gte: 1\n    lt: 5\n",
            ":4: all[0]: give exactly one operator next to 'trait' (found 2)",
        ),
        (
            "all:\n  - trait: lifetime_revenue\n    greater: 1\n",
            ":5: all[0].greater: unknown operator",
        ),
        (
            "all:\n  - events:\n      name: x\n",
            ":4: all[0]: a condition needs exactly one of all, any, not, segment, trait, event, orders, eligible (found events)",
        ),
        (
            'all:\n  - event:\n      name: cart_add\n      where:\n        - property: "sku\'; drop table x; --"\n          eq: A\n',
            ":7: all[0].event.where[0].property: ",
        ),
        (
            "all:\n  - orders:\n      cnt: {at_least: 1}\n",
            ":5: all[0].orders: Unevaluated properties are not allowed ('cnt' was unexpected)",
        ),
        (
            "all:\n  - orders:\n      days_ago_between: [30, 7]\n",
            ":5: all[0].orders.days_ago_between: [N, M] needs N <= M",
        ),
        (
            'all:\n  - segment: "vip; drop"\n',
            ":4: all[0].segment: ",
        ),
    ],
)
def test_invalid_definitions_name_file_line_and_field(tmp_path, body, message):
    path = _write(tmp_path, "s", "name: s\ndescription: d\n" + body)
    with pytest.raises(SegmentError) as err:
        load_segment(path)
    assert f"{path}{message}" in str(err.value), str(err.value)


def test_references_must_exist_and_not_cycle(tmp_path):
    _write(tmp_path, "a", "name: a\ndescription: d\nall:\n  - segment: b\n")
    _write(tmp_path, "b", "name: b\ndescription: d\nall:\n  - not:\n      segment: a\n")
    with pytest.raises(SegmentError, match="cycle: a -> b -> a"):
        load_all(tmp_path)
    _write(tmp_path, "b", "name: b\ndescription: d\nall:\n  - segment: c\n")
    with pytest.raises(SegmentError, match=r"b\.yml: segment: unknown segment 'c'"):
        load_all(tmp_path)


def test_global_rules_are_validated(tmp_path):
    _write(tmp_path, "a", "name: a\ndescription: d\nall:\n  - trait: is_erased\n    eq: false\n")
    _write(tmp_path, "b", "name: b\ndescription: d\nall:\n  - trait: is_erased\n    eq: false\n")
    _write(tmp_path, "_global", "priority_groups:\n  g: [a, zz]\n")
    with pytest.raises(SegmentError, match=r"_global.yml: priority_groups.g: unknown segment 'zz'"):
        load_all(tmp_path)
    _write(tmp_path, "_global", "priority_groups:\n  g: [a, b]\n  h: [b, a]\n")
    with pytest.raises(SegmentError, match="'b' is already in group 'g'"):
        load_all(tmp_path)
    _write(tmp_path, "_global", "exclude:\n  segment: a\n")
    with pytest.raises(
        SegmentError, match=r"_global\.yml:2: exclude: the global exclusion cannot refer"
    ):
        load_global(tmp_path)
    _write(tmp_path, "_global", "exclude:\n  trait: is_erasd\n  eq: true\n")
    with pytest.raises(SegmentError, match=r"_global.yml:2: exclude.trait: 'is_erasd' is not"):
        load_global(tmp_path)


def test_committed_schema_is_valid_and_agrees_on_shipped_and_broken_segments(tmp_path):
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    import yaml

    from orchestration.segments.model import segments_dir

    shipped = [p for p in segments_dir().glob("*.yml") if not p.name.startswith("_")]
    assert len(shipped) >= 9
    for path in shipped:
        assert not list(validator.iter_errors(yaml.safe_load(path.read_text()))), path
    broken = {"name": "s", "description": "d", "all": [{"event": {"name": "x", "count": {}}}]}
    assert list(validator.iter_errors(broken))


# --- compiled SQL on hand-computed data -----------------------------------------------------

COLUMNS = "customer_id varchar, time_zone varchar, is_erased boolean, lifetime_revenue double"


def _render(sql: str) -> str:
    """What dbt renders on DuckDB, with relations as plain table names."""
    return render_duckdb(sql, lambda name: name, dt.date.fromisoformat(AS_OF))


@pytest.fixture
def warehouse():
    con = duckdb.connect()
    con.execute(f"create table customer_360 ({COLUMNS})")
    con.execute(
        "insert into customer_360 values ('c1', 'UTC', false, 10), ('c2', 'UTC', false, 600),"
        " ('c3', 'UTC', true, 900), ('c4', 'UTC', false, null), ('c5', 'UTC', false, 0)"
    )
    con.execute(
        "create table int_segments__events "
        "(customer_id varchar, event_name varchar, properties varchar, local_date date)"
    )
    con.execute(
        "create table int_segments__orders "
        "(customer_id varchar, order_id varchar, total_amount double, local_date date)"
    )
    con.execute(
        "create table int_segments__order_lines "
        "(order_id varchar, product_id varchar, product_category varchar)"
    )
    return con


def _members(con, tmp_path, body: str, rules: GlobalRules | None = None) -> list[str]:
    segment = load_segment(_write(tmp_path, "s", "name: s\ndescription: d\n" + body))
    sql = _render(segment_sql(segment, rules).split("\n", 2)[2].replace("dbt_project/", ""))
    return sorted(r[0] for r in con.execute(f"select customer_id from ({sql})").fetchall())


def _events(con, rows):
    con.executemany("insert into int_segments__events values (?, ?, ?, ?)", rows)


def test_event_windows_count_local_days_relative_to_as_of(warehouse, tmp_path):
    _events(
        warehouse,
        [
            ("c1", "cart_add", '{"sku": "A", "price": 30}', "2026-11-21"),  # the as_of day
            ("c2", "cart_add", '{"sku": "B", "price": 5}', "2026-11-20"),  # 1 day ago
            ("c4", "cart_add", '{"sku": "A", "price": 30}', "2026-11-15"),  # 6 days ago
            ("c4", "cart_add", '{"sku": "A", "price": 30}', "2026-11-14"),  # 7 days ago
        ],
    )
    today = "all:\n  - event:\n      name: cart_add\n      within_last_days: 1\n"
    assert _members(warehouse, tmp_path, today) == ["c1"]
    two_days = "all:\n  - event:\n      name: cart_add\n      within_last_days: 2\n"
    assert _members(warehouse, tmp_path, two_days) == ["c1", "c2"]
    week = "all:\n  - event:\n      name: cart_add\n      days_ago_between: [1, 6]\n      count: {at_least: 1}\n"
    assert _members(warehouse, tmp_path, week) == ["c2", "c4"]
    twice = "all:\n  - event:\n      name: cart_add\n      count: {at_least: 2}\n"
    assert _members(warehouse, tmp_path, twice) == ["c4"]
    at_most_one = "all:\n  - event:\n      name: cart_add\n      count: {at_most: 1}\n"
    # no events at all counts as 0: c3 and c5 qualify (no global exclusion in this test)
    assert _members(warehouse, tmp_path, at_most_one) == ["c1", "c2", "c3", "c5"]
    priced = (
        "all:\n  - event:\n      name: cart_add\n      where:\n"
        "        - property: sku\n          eq: A\n        - property: price\n          gte: 20\n"
    )
    assert _members(warehouse, tmp_path, priced) == ["c1", "c4"]


def test_first_and_last_occurrence(warehouse, tmp_path):
    _events(
        warehouse,
        [
            ("c1", "session_start", "{}", "2026-11-19"),
            ("c2", "session_start", "{}", "2026-10-01"),  # first long ago, last recent
            ("c2", "session_start", "{}", "2026-11-20"),
        ],
    )
    first = "all:\n  - event:\n      name: session_start\n      occurrence: first\n      within_last_days: 7\n"
    assert _members(warehouse, tmp_path, first) == ["c1"]
    last = "all:\n  - event:\n      name: session_start\n      occurrence: last\n      within_last_days: 7\n"
    assert _members(warehouse, tmp_path, last) == ["c1", "c2"]


def test_orders_count_revenue_category_and_nulls(warehouse, tmp_path):
    warehouse.executemany(
        "insert into int_segments__orders values (?, ?, ?, ?)",
        [
            ("c1", "o1", 40.0, "2026-11-21"),
            ("c2", "o2", 300.0, "2026-08-01"),
            ("c2", "o3", 350.0, "2026-11-01"),
            ("c4", "o4", 5.0, "2025-01-01"),
        ],
    )
    warehouse.executemany(
        "insert into int_segments__order_lines values (?, ?, ?)",
        [("o1", "p1", "shoes"), ("o2", "p2", "bags"), ("o3", "p1", "shoes")],
    )
    one = "all:\n  - orders:\n      count: {at_least: 1, at_most: 1}\n"
    assert _members(warehouse, tmp_path, one) == ["c1", "c4"]
    big = "all:\n  - orders:\n      revenue: {at_least: 600}\n      within_last_days: 365\n"
    assert _members(warehouse, tmp_path, big) == ["c2"]
    shoes = "all:\n  - orders:\n      category: shoes\n      days_ago_between: [0, 30]\n"
    assert _members(warehouse, tmp_path, shoes) == ["c1", "c2"]
    never = "all:\n  - not:\n      orders:\n        count: {at_least: 1}\n"
    assert _members(warehouse, tmp_path, never) == ["c3", "c5"]
    # a null trait never qualifies, not even for ne
    not_ten = "all:\n  - trait: lifetime_revenue\n    ne: 10\n"
    assert _members(warehouse, tmp_path, not_ten) == ["c2", "c3", "c5"]
    empty = "all:\n  - trait: lifetime_revenue\n    gt: 100000\n"
    assert _members(warehouse, tmp_path, empty) == []


def test_global_exclusion_references_and_priority_groups(warehouse, tmp_path):
    rules = GlobalRules({"trait": "is_erased", "eq": True}, {"g": ("high", "low")}, None)
    rich = "all:\n  - trait: lifetime_revenue\n    gte: 500\n"
    assert _members(warehouse, tmp_path, rich, rules) == ["c2"]  # c3 is erased
    warehouse.execute(
        "create table segment__high as select 'c2' as customer_id, 'high' as segment_name,"
        f" false as is_holdout, date '{AS_OF}' as as_of"
    )
    ref = "all:\n  - not:\n      segment: high\n  - trait: lifetime_revenue\n    gte: 0\n"
    assert _members(warehouse, tmp_path, ref) == ["c1", "c3", "c5"]
    warehouse.execute(
        "create table segment__low as select customer_id, 'low' as segment_name,"
        f" false as is_holdout, date '{AS_OF}' as as_of from customer_360"
    )
    warehouse.execute(
        "create table segment__other as select customer_id, 'other' as segment_name,"
        f" false as is_holdout, date '{AS_OF}' as as_of from customer_360 where customer_id = 'c2'"
    )

    class _Seg:
        def __init__(self, name):
            self.name = name

    sql = _render(membership_sql([_Seg("high"), _Seg("low"), _Seg("other")], rules))
    rows = warehouse.execute(
        f"select customer_id, segment_name from ({sql}) order by 1, 2"
    ).fetchall()
    # c2 qualifies for high and low (group g): only high; other is in no group
    assert ("c2", "high") in rows and ("c2", "low") not in rows and ("c2", "other") in rows
    assert [r for r in rows if r[0] == "c1"] == [("c1", "low")]


def test_local_date_puts_an_event_on_the_customers_calendar_day():
    """The project's local_date macro, rendered as dbt renders it, run in DuckDB."""
    expr = _render("{{ local_date('ts', 'tz') }}")
    rows = (
        duckdb.connect()
        .execute(
            f"select tz, {expr} from (values"
            " ('Europe/Berlin', timestamp '2026-11-21 23:30:00'),"
            " ('America/New_York', timestamp '2026-11-22 03:30:00'),"
            " (null, timestamp '2026-11-21 23:59:59')) as t(tz, ts)"
        )
        .fetchall()
    )
    assert rows == [
        ("Europe/Berlin", dt.date(2026, 11, 22)),  # after midnight in Berlin
        ("America/New_York", dt.date(2026, 11, 21)),  # still the 21st in New York
        (None, dt.date(2026, 11, 21)),
    ]


def test_channel_eligibility_needs_reachable_and_consented(tmp_path):
    from orchestration.segments.compiler import condition_sql

    body = "all:\n  - eligible: sms\n"
    segment = load_segment(_write(tmp_path, "s", "name: s\ndescription: d\n" + body))
    con = duckdb.connect()
    con.execute(
        "create table customers as select * from (values ('a', true, true), ('b', true, false),"
        " ('c', false, true), ('d', null, true)) as t(customer_id, is_sms_reachable,"
        " is_sms_marketing_consented)"
    )
    sql = condition_sql(segment.condition)
    rows = con.execute(f"select customer_id from customers where coalesce({sql}, false)").fetchall()
    assert rows == [("a",)]
    bad = _write(tmp_path, "s", "name: s\ndescription: d\nall:\n  - eligible: fax\n")
    with pytest.raises(SegmentError, match=r"s\.yml:4: all\[0\]\.eligible: 'fax' is not one of"):
        load_segment(bad)
