"""The `reusable_table` materialization's as_of filters (dbt_project/macros/reusable_table.sql).

A scratch dbt project with the project's macros and two models: `events` (a table the test
rewrites between builds) and `known`, a reusable_table that reads the as_of only as
`occurred_at <= as_of_end()` and says so in `meta.as_of_filters`. Each build runs the real dbt
on a DuckDB file, with the code digest the nightly passes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from orchestration import dbt_warm
from orchestration.dbt_invocations import CODE_DIGEST_ENV
from tests.scratch_dbt import macro_project

pytestmark = pytest.mark.integration

DBT = dbt_warm.executable()
EVENTS = """{{ config(materialized='table') }}
select * from (values (1, timestamp '2026-11-10 08:00:00', 'a'),
    (2, timestamp '2026-11-12 09:00:00', 'NOTE'), (3, timestamp '2026-11-20 10:00:00', 'c'))
    as t(event_id, occurred_at, note)
"""
KNOWN = """{{ config(materialized='reusable_table', meta={'as_of_filters': FILTERS, 'reads_columns': READS}) }}
select event_id, occurred_at from {{ ref('events') }} where occurred_at <= {{ as_of_end() }}EXTRA
"""


def _project(
    root: Path,
    filters: str = "{'events': 'occurred_at'}",
    extra: str = "",
    reads: str = "{}",
    note: str = "b",
    second: str = "2026-11-12 09:00:00",
) -> Path:
    project = macro_project(root)
    (project / "models" / "events.sql").write_text(
        EVENTS.replace("NOTE", note).replace("2026-11-12 09:00:00", second)
    )
    (project / "models" / "known.sql").write_text(
        KNOWN.replace("FILTERS", filters).replace("EXTRA", extra).replace("READS", reads)
    )
    return project


def _build(project: Path, as_of: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "C360_AS_OF": as_of, CODE_DIGEST_ENV: "test-digest"}
    env.pop("C360_RUN_ID", None)
    return subprocess.run(
        [DBT, "build", "--project-dir", str(project), "--profiles-dir", str(project)],
        env=env, capture_output=True, text=True, cwd=project, check=False,
    )  # fmt: skip


def _known(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("select event_id from main.known order by 1").fetchall()


def test_kept_across_as_ofs_only_while_no_row_falls_between(tmp_path):
    project = _project(tmp_path)
    first = _build(project, "2026-11-13")
    assert first.returncode == 0, first.stdout
    assert "c360 reused" not in first.stdout
    assert _known(tmp_path) == [(1,), (2,)]
    # nothing happened between the two as_ofs: the table is kept
    quiet = _build(project, "2026-11-15")
    assert quiet.returncode == 0, quiet.stdout
    assert "c360 reused: " in quiet.stdout
    assert _known(tmp_path) == [(1,), (2,)]
    # event 3 happened by this as_of: rebuilt, with it
    later = _build(project, "2026-11-21")
    assert later.returncode == 0, later.stdout
    assert "c360 reused" not in later.stdout
    assert _known(tmp_path) == [(1,), (2,), (3,)]
    # back to an earlier as_of (a backfill): event 3 is between the two, rebuilt without it
    back = _build(project, "2026-11-14")
    assert back.returncode == 0, back.stdout
    assert "c360 reused" not in back.stdout
    assert _known(tmp_path) == [(1,), (2,)]


def test_a_change_in_a_column_the_model_does_not_read_keeps_it(tmp_path):
    """meta.reads_columns: the input's digest covers the columns the model reads only."""
    reads = "{'events': ['event_id', 'occurred_at']}"
    assert _build(_project(tmp_path, reads=reads), "2026-11-13").returncode == 0
    # another note: a column `known` does not read
    kept = _build(_project(tmp_path, reads=reads, note="other"), "2026-11-13")
    assert kept.returncode == 0, kept.stdout
    assert "c360 reused: " in kept.stdout
    # event 2 moved after the as_of: a column it reads, rebuilt without it
    moved = _build(_project(tmp_path, reads=reads, second="2026-11-14 09:00:00"), "2026-11-13")
    assert moved.returncode == 0, moved.stdout
    assert "c360 reused" not in moved.stdout
    assert _known(tmp_path) == [(1,)]


NOTES = """{{ config(materialized='reusable_table', meta={'DECLARED': {'events': ['note']}}) }}
select distinct note from {{ ref('events') }}
"""


def _notes(root: Path, declared: str = "reads_distinct", more: str = "") -> Path:
    """`events` with rows added (`more`: SQL values) and `notes`, the distinct notes."""
    project = _project(root)
    events = (project / "models" / "events.sql").read_text()
    (project / "models" / "events.sql").write_text(events.replace("'c')", "'c')" + more))
    (project / "models" / "notes.sql").write_text(NOTES.replace("DECLARED", declared))
    return project


def _reused(result: subprocess.CompletedProcess, model: str) -> bool:
    return any(
        "c360 reused: " in line and f'."{model}"' in line for line in result.stdout.splitlines()
    )


def test_a_row_repeating_a_distinct_value_keeps_it(tmp_path):
    """meta.reads_distinct: the input's digest covers each distinct row of the columns once."""
    repeat = ", (4, timestamp '2026-11-11 08:00:00', 'a')"
    assert _build(_notes(tmp_path), "2026-11-13").returncode == 0
    # event 4 repeats note 'a': the distinct notes are the same, the table is kept
    repeated = _build(_notes(tmp_path, more=repeat), "2026-11-13")
    assert repeated.returncode == 0, repeated.stdout
    assert _reused(repeated, "notes")
    # declared as reads_columns, the same repetition rebuilds it (the input's rows moved)
    assert _build(_notes(tmp_path, "reads_columns"), "2026-11-13").returncode == 0
    counted = _build(_notes(tmp_path, "reads_columns", more=repeat), "2026-11-13")
    assert counted.returncode == 0, counted.stdout
    assert not _reused(counted, "notes")
    # a new note: rebuilt, with it
    new = _build(_notes(tmp_path, more=", (4, timestamp '2026-11-11 08:00:00', 'd')"), "2026-11-13")
    assert new.returncode == 0, new.stdout
    assert not _reused(new, "notes")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        notes = con.execute("select note from main.notes order by 1").fetchall()
    assert notes == [("a",), ("b",), ("c",), ("d",)]


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("'reads_distinct': {'events': ['note']}, 'reads_columns': {'events': ['note']}",
         "events is in both meta.reads_columns and meta.reads_distinct"),
        # an empty list would digest every column (or, with an as_of filter, their distinct rows)
        ("'reads_distinct': {'events': []}", "reads_distinct lists no column of events"),
    ],
)  # fmt: skip
def test_a_declaration_that_says_nothing_clear_stops_the_build(tmp_path, declared, message):
    project = _notes(tmp_path)
    (project / "models" / "notes.sql").write_text(
        NOTES.replace("'DECLARED': {'events': ['note']}", declared)
    )
    result = _build(project, "2026-11-13")
    assert result.returncode != 0
    assert message in result.stdout


@pytest.mark.parametrize(
    ("filters", "extra", "message"),
    [
        # the as_of read besides the declared filter
        ("{'events': 'occurred_at'}", " and {{ as_of_date() }} > date '2026-01-01'",
         "model.scratch.known: meta.as_of_filters says the model reads the as_of only"),
        # a filter on a relation the model does not read (a typo)
        ("{'evnets': 'occurred_at'}", "",
         "meta.as_of_filters names evnets, which the model does not read (events)"),
    ],
)  # fmt: skip
def test_a_declaration_the_sql_does_not_keep_stops_the_build(tmp_path, filters, extra, message):
    result = _build(_project(tmp_path, filters=filters, extra=extra), "2026-11-13")
    assert result.returncode != 0
    assert message in result.stdout


STAMPED = """{{ config(materialized='reusable_table', meta={'kept_across_as_of': COLUMNS}) }}
select event_id, occurred_at, {{ as_of_date() }} as as_of,
    'c_' || substr(md5(event_id || '{{ as_of_value() }}'), 1, 4) as minted
from {{ ref('events') }}
"""


def _stamped(root: Path, columns: str, **kwargs) -> Path:
    project = _project(root, **kwargs)
    (project / "models" / "stamped.sql").write_text(STAMPED.replace("COLUMNS", columns))
    return project


def _stamps(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select event_id, cast(as_of as varchar), minted from main.stamped order by 1"
        ).fetchall()


def test_kept_across_as_ofs_with_the_as_of_column_set_to_the_run(tmp_path):
    """meta.kept_across_as_of: the as_of is left out of the code fingerprint wherever it appears,
    and a kept table's declared columns take the run's as_of (the model's promise: with the same
    inputs nothing else moves — here a value minted from the as_of, which a kept table keeps)."""
    project = _stamped(tmp_path, "['as_of']")
    first = _build(project, "2026-11-13")
    assert first.returncode == 0, first.stdout
    built = _stamps(tmp_path)
    assert {row[1] for row in built} == {"2026-11-13"}
    quiet = _build(project, "2026-11-14")
    assert quiet.returncode == 0, quiet.stdout
    assert "c360 reused: " in quiet.stdout and "stamped" in quiet.stdout
    assert _stamps(tmp_path) == [(e, "2026-11-14", minted) for e, _, minted in built]
    # the digest kept is the restamped table's: the next night is kept again, a hand edit is not
    assert "c360 reused: " in _build(project, "2026-11-15").stdout
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("update main.stamped set minted = 'edited' where event_id = 1")
    edited = _build(project, "2026-11-16")
    assert edited.returncode == 0, edited.stdout
    assert [r[2] for r in _stamps(tmp_path)] == [
        "c_" + __import__("hashlib").md5(f"{e}2026-11-16".encode()).hexdigest()[:4]
        for e in (1, 2, 3)
    ]
    # an input changed: rebuilt at the run's as_of
    changed = _build(_stamped(tmp_path, "['as_of']", note="other"), "2026-11-17")
    assert changed.returncode == 0, changed.stdout
    assert {row[1] for row in _stamps(tmp_path)} == {"2026-11-17"}


def test_kept_across_as_of_is_a_list_of_columns(tmp_path):
    result = _build(_stamped(tmp_path, "'as_of'"), "2026-11-13")
    assert result.returncode != 0
    assert "meta.kept_across_as_of is a list of column names, not 'as_of'" in result.stdout
