"""Segment and sync YAML are data, never templates (issue 14): Jinja in a value or description is
refused naming file, line and field; a description's lines stay SQL comments; compiled SQL is
rendered in a sandbox; a sync names a defined segment, a consent purpose and its destination's
format. A hypothesis fuzz throws Jinja, SQL, quotes, newlines and deep nesting at both loaders
and checks that what is accepted compiles to quoted literals only and that nothing executes."""

import datetime as dt
import os
import tempfile
from pathlib import Path

import duckdb
import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jinja2 import nodes

from orchestration.activation.destinations.registry import kinds
from orchestration.activation.planner import plan_sql
from orchestration.activation.sync_definition import SyncDefinitionError, consent_purposes
from orchestration.activation.syncs import defined_segments, load_sync
from orchestration.contracts.rules_sql import quote_literal
from orchestration.segments.compiler import segment_sql
from orchestration.segments.model import SegmentError, customer_360_columns, load_segment
from orchestration.segments.render import render_duckdb

AS_OF = dt.date(2026, 3, 1)
CANARY_FILE = Path(tempfile.gettempdir()) / f"c360_injection_canary_{os.getpid()}"
SHELL = f"{{{{ cycler.__init__.__globals__.os.system('touch {CANARY_FILE}') }}}}"
# strings a segment or sync may hold: quoted, they stay data
AWKWARD = (
    "'; drop table canary; --",
    "x' or '1'='1",
    '"; drop table canary; --',
    "back\\slash\\' and E'\\x27'",
    "*/ drop table canary; /*",
    "$$; drop table canary; $$",
    "é 漢字 🙂",
    "{",
    "}}",
    "%}",
    "-- ",
    "a\tb",
)
# strings they may not hold: Jinja, line breaks and control characters outside the description
REFUSED = (
    "{{ env_var('C360_WEBHOOK_SECRET') }}",
    "{% do run_query('drop table canary') %}",
    "{# hidden #}",
    "{%- raw %}x{% endraw %}",
    SHELL,
    "line one\ndrop table canary; --",
    "\r\ndrop table canary;\u2028-- ",
    "\x00",
    "\u202e",
)
hostile = st.one_of(
    st.sampled_from(AWKWARD + REFUSED),
    st.text(max_size=12),
    st.lists(st.one_of(st.sampled_from(AWKWARD + REFUSED), st.text(max_size=4)), max_size=4).map(
        "".join
    ),
)
fuzz = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.yml"
    path.write_text(body)
    return path


def _warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create table canary (x integer)")
    con.execute(
        "create table customer_360 (customer_id varchar, time_zone varchar, is_erased boolean,"
        " email varchar, phone varchar, first_name varchar, lifetime_revenue double)"
    )
    con.execute(
        "insert into customer_360 values ('c1', 'UTC', false, 'a@x.com', '+1', 'Ann', 10),"
        " ('c2', null, false, '''; drop table canary; --', null, '{{', 0)"
    )
    con.execute(
        "create table int_segments__events "
        "(customer_id varchar, event_name varchar, properties varchar, local_date date)"
    )
    con.execute(
        "insert into int_segments__events values ('c1', 'page_view', '{\"plan\": 1}', ?)", [AS_OF]
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


def _canary_alive(con: duckdb.DuckDBPyConnection) -> bool:
    return (
        con.execute(
            "select count(*) from information_schema.tables where table_name = 'canary'"
        ).fetchone()[0]
        == 1
    )


# --- what the issue found ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ("description: \"{{ env_var('C360_WEBHOOK_SECRET') }}\"\nall:\n  - trait: email\n"
         "    is_null: true\n", 2, "description"),
        ("description: d\nall:\n  - trait: email\n    eq: \"{{ env_var('X') }}\"\n", 5,
         "all[0].eq"),
        ("description: d\nall:\n  - orders: {category: '{% do run_query(1) %}'}\n", 4,
         "all[0].orders.category"),
        ("description: d\nall:\n  - trait: email\n    in: [a, '{# x #}']\n", 5, "all[0].in[1]"),
        ("description: d\nall:\n  - trait: email\n    eq: \"a\\nb\"\n", 5, "all[0].eq"),
        ("description: d\nall:\n  - trait: lifetime_revenue\n    gt: .nan\n", 5, "all[0].gt"),
    ],
)  # fmt: skip
def test_jinja_control_characters_and_nan_are_refused_naming_file_line_field(
    tmp_path, body, line, field
):
    path = _write(tmp_path, "s", "name: s\n" + body)
    with pytest.raises(SegmentError) as err:
        load_segment(path)
    assert str(err.value).startswith(f"{path}:{line}: {field}: "), str(err.value)


def test_a_description_over_several_lines_stays_in_comments_and_executes_nothing(tmp_path):
    body = (
        'name: s\ndescription: "Spenders\\ndrop table canary; --\\r\\rdrop table canary;"\n'
        "all:\n  - trait: lifetime_revenue\n    gt: 5\n"
    )
    segment = load_segment(_write(tmp_path, "s", body))
    sql = segment_sql(segment)
    assert "-- Spenders\n-- drop table canary; --\n--\n-- drop table canary;\n" in sql
    con = _warehouse()
    rows = con.execute(render_duckdb(sql, lambda name: name, AS_OF)).fetchall()
    assert [r[0] for r in rows] == ["c1"] and _canary_alive(con)


def test_rendering_is_sandboxed(tmp_path):
    CANARY_FILE.unlink(missing_ok=True)
    with pytest.raises(jinja2.exceptions.SecurityError):
        render_duckdb(SHELL, lambda name: name, AS_OF)
    assert not CANARY_FILE.exists()


SYNC = "name: s\ndestination: file_drop\nchannel: email\nfields: {email: email}\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("segment: no_such_segment\n", "segment: 'no_such_segment' is not a defined segment"),
        ("segment: vip\npurpose: advertising\n", "purpose: 'advertising' not one of"),
        ("segment: vip\nformat: xlsx\n", "format: 'xlsx' not one of ('csv', 'parquet')"),
        ("segment: [vip]\n", "segment: must be text"),
        ("segment: vip\ndescription: \"{{ env_var('X') }}\"\n", "description: '{{' is not allowed"),
    ],
)
def test_sync_validates_segment_purpose_format_against_what_exists(tmp_path, extra, message):
    path = _write(tmp_path, "s", SYNC + extra)
    with pytest.raises(SyncDefinitionError) as err:
        load_sync(path)
    assert str(err.value).startswith(f"{path}:") and message in str(err.value), str(err.value)


def test_a_webhook_sync_takes_no_format(tmp_path):
    path = _write(tmp_path, "s", SYNC.replace("file_drop", "webhook") + "segment: vip\n")
    assert load_sync(path).destination == "webhook"
    path.write_text(path.read_text() + "format: parquet\n")
    with pytest.raises(SyncDefinitionError, match="format: only a file_drop sync has a format"):
        load_sync(path)


# --- the fuzz ----------------------------------------------------------------------------------

ALLOWED_CALLS = {"ref", "as_of_date", "json_text", "json_number", "hash_bucket"}


def _jinja_is_the_compilers_own(sql: str) -> None:
    """Every Jinja construct in compiled SQL is a call of a known helper with constant arguments
    the compiler writes (identifiers, relation names): none carries user text."""
    assert "{#" not in sql and "{%" not in sql
    tree = jinja2.Environment().parse(sql)
    for node in tree.find_all(nodes.Node):
        assert isinstance(
            node, nodes.Template | nodes.Output | nodes.TemplateData | nodes.Call | nodes.Name
            | nodes.Const
        ), node  # fmt: skip
        if isinstance(node, nodes.Call):
            assert isinstance(node.node, nodes.Name) and node.node.name in ALLOWED_CALLS
        if isinstance(node, nodes.Const):
            assert all(c.isalnum() or c in "_.:'| " for c in str(node.value)), node.value


def _strings(value, path=()):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _slot(draw, safe: tuple[str, ...]) -> str:
    """Mostly an awkward but usable value, sometimes anything hostile: a document then has a fair
    chance of being accepted, so both outcomes are exercised."""
    return draw(st.sampled_from(safe + AWKWARD)) if draw(st.integers(0, 9)) < 9 else draw(hostile)


def _name(draw, *safe: str) -> str:
    """An identifier slot: mostly one that exists, sometimes anything."""
    return draw(st.sampled_from(safe)) if draw(st.integers(0, 9)) < 9 else _slot(draw, ())


@st.composite
def segment_documents(draw):
    def text(*safe):
        return _name(draw, *safe) if safe else _slot(draw, ())

    condition = {
        "all": [
            {"trait": text("email", "first_name"), "eq": text()},
            {"trait": "email", "in": [text(), text()]},
            {"trait": "first_name", "contains": text("x")},
            {"trait": "email", "starts_with": text("a")},
            {"event": {"name": text("page_view"), "where": [
                {"property": text("plan"), "ne": text()}]}},
            {"orders": {"product_id": text(), "category": text()}},
        ]
    }  # fmt: skip
    for _ in range(draw(st.integers(0, 35))):  # deep nesting: 2 YAML levels per step
        condition = {draw(st.sampled_from(["all", "any"])): [condition]}
    doc = {"name": text("s"), "description": text(), **condition}
    style = draw(st.booleans())
    out = yaml.safe_dump(
        doc, default_flow_style=style, allow_unicode=draw(st.booleans()), width=1e9
    )
    if draw(st.integers(0, 9)) == 9:
        out += "bomb: &a [x, x]\nmore: [*a, *a, *a]\n"
    return doc, out


@given(case=segment_documents())
@fuzz
def test_fuzzed_segment_yaml_is_refused_cleanly_or_compiles_to_literals_only(tmp_path, case):
    doc, text = case
    path = _write(tmp_path, "s", text)
    CANARY_FILE.unlink(missing_ok=True)
    try:
        segment = load_segment(path)
    except SegmentError as exc:
        assert str(exc).startswith(f"{path}:")
        event(f"refused: {str(exc).split(': ')[1][:40]}")
        return
    event("accepted")
    sql = segment_sql(segment)
    _jinja_is_the_compilers_own(sql)
    con = _warehouse()
    for where, value in _strings(doc):
        if where == ("description",):
            assert all(f"-- {line}".rstrip() in sql for line in value.splitlines())
        elif where != ("name",) and where[-1] not in ("trait", "name", "property"):
            assert quote_literal(value) in sql
            assert con.execute(f"select {quote_literal(value)}").fetchone()[0] == value
    con.execute(render_duckdb(sql, lambda name: name, AS_OF)).fetchall()
    assert _canary_alive(con) and not CANARY_FILE.exists()


@st.composite
def sync_documents(draw):
    def text(*safe):
        return _name(draw, *safe)

    doc = {
        "name": text("s"),
        "description": text("d"),
        "segment": text("vip", "lapsed_high_value"),
        "destination": text("file_drop", "file_drop", "webhook", *kinds()),
        "channel": text("email", "sms"),
        "purpose": text(*consent_purposes()),
        "fields": {text("email", "e-mail", "First Name"): text("email", "first_name")},
    }
    if draw(st.booleans()):
        doc["format"] = text("csv", "parquet")
    if draw(st.booleans()):
        doc["mode"] = text("upsert", "mirror")
    if draw(st.integers(0, 9)) == 9:
        for _ in range(draw(st.integers(1, 40))):
            doc = {"fields": doc}
    if draw(st.integers(0, 9)) == 9:
        doc["fields"] = {
            "e": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
        }
    return yaml.safe_dump(doc, default_flow_style=draw(st.booleans()), width=1e9)


@given(text=sync_documents())
@fuzz
def test_fuzzed_sync_yaml_is_refused_cleanly_or_names_only_what_exists(tmp_path, text):
    path = _write(tmp_path, "s", text)
    try:
        sync = load_sync(path)
    except SyncDefinitionError as exc:
        assert str(exc).startswith(f"{path}")
        event(f"refused: {str(exc).split(': ')[1][:30]}")
        return
    event("accepted")
    assert sync.segment in defined_segments() and sync.purpose in consent_purposes()
    assert sync.destination in kinds() and sync.channel in ("email", "sms")
    assert set(sync.fields.values()) <= customer_360_columns()
    if sync.destination == "file_drop":
        assert sync.file_format in ("csv", "parquet")
    con = _warehouse()
    con.execute("create schema marts")
    con.execute("create schema activation")
    con.execute("create table marts.customer_360 as select * from customer_360")
    con.execute(
        "create table marts.segment_membership as "
        "select customer_id, false as is_holdout, 'vip' as segment_name from customer_360"
    )
    con.execute(
        "create table marts.consent_state (contact_point varchar, channel varchar,"
        " purpose varchar, consent_status varchar, consent_captured_at timestamp,"
        " is_expired boolean, is_suppressed boolean, is_consented boolean)"
    )
    con.execute(
        "create table activation.contact_history"
        " (sync_id varchar, as_of date, outcome varchar, customer_id varchar)"
    )
    con.execute(plan_sql(sync, AS_OF)).fetchall()
    assert _canary_alive(con)
