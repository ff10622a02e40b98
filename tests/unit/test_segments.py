"""Segment YAML: validation errors name file, line and field; compiled SQL is current and safe."""

import hashlib
from pathlib import Path

import duckdb
import pytest

from orchestration.segments.compiler import condition_sql, render
from orchestration.segments.model import SegmentError, load_all, load_segment


def test_committed_generated_sql_is_current_with_yaml():
    stale = [p for p, text in render(load_all()).items() if not p.exists() or p.read_text() != text]
    assert not stale, f"run `c360 segments compile`: {stale}"


def _write(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / f"{name}.yml"
    p.write_text(body)
    return p


def test_unknown_trait_error_names_file_line_and_field(tmp_path):
    p = _write(
        tmp_path, "s", "name: s\ndescription: d\nall:\n  - trait: lifetime_revenu\n    gte: 5\n"
    )
    with pytest.raises(SegmentError) as err:
        load_segment(p)
    assert f"{p}:4: all[0].trait: 'lifetime_revenu' is not a customer_360 column" in str(err.value)


def test_injection_through_a_value_stays_a_literal(tmp_path):
    p = _write(
        tmp_path,
        "s",
        'name: s\ndescription: d\nall:\n  - trait: email\n    eq: "x\'; drop table marts.customer_360; --"\n',
    )
    seg = load_segment(p)
    sql = condition_sql(seg.condition)
    con = duckdb.connect()
    con.execute("create table t as select 'x''; drop table marts.customer_360; --' as email")
    assert con.execute(f"select count(*) from t as customers where {sql}").fetchone()[0] == 1


def test_injection_through_an_identifier_is_rejected(tmp_path):
    p = _write(
        tmp_path, "s", 'name: s\ndescription: d\nall:\n  - trait: "1=1 or email"\n    eq: 1\n'
    )
    with pytest.raises(SegmentError, match=r"all\[0\]\.trait"):
        load_segment(p)


def test_name_must_match_file(tmp_path):
    p = _write(
        tmp_path, "s", "name: other\ndescription: d\nall:\n  - trait: email\n    is_null: true\n"
    )
    with pytest.raises(SegmentError, match="must equal the file name"):
        load_segment(p)


def test_holdout_bucket_is_identical_in_duckdb_and_python():
    con = duckdb.connect()
    ids = [f"c_{i:06d}" for i in range(500)]
    sql_buckets = con.execute(
        "select cast(('0x' || substr(md5(id || ':vip'), 1, 8)) as ubigint) % 10000 "
        "from unnest(?) as t(id)",
        [ids],
    ).fetchall()
    py = [int(hashlib.md5(f"{i}:vip".encode()).hexdigest()[:8], 16) % 10000 for i in ids]
    assert [r[0] for r in sql_buckets] == py


def test_nested_conditions_compile_to_expected_truth_table():
    cond = {
        "any": [
            {"all": [{"trait": "a", "gte": 1}, {"not": {"trait": "b", "eq": "x"}}]},
            {"trait": "c", "is_null": True},
        ]
    }
    # the compiler only accepts published columns; check the SQL shape on a local table instead
    import orchestration.segments.compiler as comp

    original = comp.customer_360_columns
    comp.customer_360_columns = lambda: frozenset({"a", "b", "c"})
    try:
        sql = condition_sql(cond)
    finally:
        comp.customer_360_columns = original
    con = duckdb.connect()
    con.execute("create table t (id int, a int, b varchar, c int)")
    con.execute(
        "insert into t values (1, 2, 'y', 1), (2, 2, 'x', 1), (3, 0, 'y', null), (4, 0, 'y', 5), (5, 2, null, 1)"
    )
    got = [
        r[0]
        for r in con.execute(
            f"select id from t as customers where coalesce({sql}, false) order by id"
        ).fetchall()
    ]
    assert got == [1, 3, 5]
