"""Data tests of kept tables (dbt_project/macros/kept_test.sql): a test that passed on the same
rows with the same SQL passes again without running; a failure is never kept.

A scratch dbt project with the project's macros: `events` (a table the test rewrites between
builds), `plain` (a table reading it) with a `not_null` test, and `known` (a reusable_table
reading `plain`) with a `unique` test and three singular tests: one declaring it reads only its
refs (`meta.kept_with_inputs`), one not declaring it and one reading the clock (never kept). Each build runs the real dbt on a DuckDB file with
the code digest and a run id, as the nightly passes them.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from orchestration import dbt_warm
from orchestration.dbt_invocations import CODE_DIGEST_ENV, RUN_ID_ENV
from tests.scratch_dbt import macro_project

pytestmark = pytest.mark.integration

DBT = dbt_warm.executable()
SCHEMA = """version: 2
models:
  - name: known
    columns:
      - name: event_id
        data_tests: [unique]
  - name: plain
    columns:
      - name: event_id
        data_tests: [not_null]
"""
UNIQUE = "test.scratch.unique_known_event_id"
SINGULAR = "test.scratch.few_events"
NOT_NULL = "test.scratch.not_null_plain_event_id"


def _project(root: Path, ids: str = "1, 2, 3", singular_limit: int = 10) -> Path:
    project = macro_project(root)
    (project / "tests").mkdir()
    rows = ", ".join(f"({i})" for i in ids.split(", "))
    (project / "models" / "events.sql").write_text(
        f"{{{{ config(materialized='table') }}}}\nselect * from (values {rows}) as t(event_id)\n"
    )
    # `plain` and its test come first: in a new warehouse a test runs before any reusable_table
    (project / "models" / "known.sql").write_text(
        "{{ config(materialized='reusable_table') }}\nselect event_id from {{ ref('plain') }}\n"
    )
    (project / "models" / "plain.sql").write_text(
        "{{ config(materialized='table') }}\nselect event_id from {{ ref('events') }}\n"
    )
    (project / "models" / "schema.yml").write_text(SCHEMA)
    (project / "tests" / "few_events.sql").write_text(
        "{{ config(meta={'kept_with_inputs': true}) }}\n"
        f"select count(*) from {{{{ ref('known') }}}} having count(*) > {singular_limit}\n"
    )
    # a singular test that does not say it reads only its refs, and one reading the clock
    (project / "tests" / "undeclared.sql").write_text(
        "select * from {{ ref('known') }} where event_id is null\n"
    )
    (project / "tests" / "clocked.sql").write_text(
        "{{ config(meta={'kept_with_inputs': true}) }}\n"
        "select * from {{ ref('known') }} where current_date < date '2000-01-01'\n"
    )
    return project


def _build(project: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "C360_AS_OF": "2026-11-13", CODE_DIGEST_ENV: "test-digest",
           RUN_ID_ENV: str(uuid.uuid4()), **env}  # fmt: skip
    return subprocess.run(
        [DBT, "build", "--project-dir", str(project), "--profiles-dir", str(project)],
        env=env, capture_output=True, text=True, cwd=project, check=False,
    )  # fmt: skip


def _kept(out: str) -> set[str]:
    """The tests the build kept (unique ids without dbt's hash suffix)."""
    ids = (line.split("c360 test kept: ")[1].split(" ")[0]
           for line in out.splitlines() if "c360 test kept: " in line)  # fmt: skip
    return {".".join(unique_id.split(".")[:3]) for unique_id in ids}


def test_a_passed_test_of_a_kept_table_is_kept_and_a_failure_never_is(tmp_path):
    project = _project(tmp_path)
    first = _build(project)
    assert first.returncode == 0, first.stdout
    assert _kept(first.stdout) == set(), "the first build runs every test"
    # nothing changed: `known` kept, its two tests kept; `plain` (a table) tested again
    quiet = _build(project)
    assert quiet.returncode == 0, quiet.stdout
    assert "c360 reused: " in quiet.stdout
    assert _kept(quiet.stdout) == {UNIQUE, SINGULAR}
    assert "PASS=8 WARN=0 ERROR=0" in quiet.stdout, quiet.stdout  # 3 models, 5 tests
    # a duplicate: `known` rebuilt, its unique test runs and fails
    project = _project(tmp_path, ids="1, 2, 2")
    failed = _build(project)
    assert failed.returncode != 0 and _kept(failed.stdout) == set(), failed.stdout
    assert "Failure in test unique_known_event_id" in failed.stdout
    # the same rows again: `known` is kept, but a failure is never kept: it runs and fails again
    again = _build(project)
    assert again.returncode != 0, again.stdout
    assert "c360 reused: " in again.stdout
    assert UNIQUE not in _kept(again.stdout)
    assert "Failure in test unique_known_event_id" in again.stdout


def test_a_changed_test_or_a_plain_build_runs_the_test(tmp_path):
    project = _project(tmp_path)
    assert _build(project).returncode == 0
    # the singular test's SQL changed (a lower limit it still passes): run, not kept
    project = _project(tmp_path, singular_limit=5)
    changed = _build(project)
    assert changed.returncode == 0, changed.stdout
    assert _kept(changed.stdout) == {UNIQUE}
    # a plain `dbt build` (no code digest) and a full refresh run every test
    plain = _build(project, **{CODE_DIGEST_ENV: ""})
    assert plain.returncode == 0 and _kept(plain.stdout) == set(), plain.stdout
    refreshed = _build(project, DBT_FULL_REFRESH="true")
    assert refreshed.returncode == 0 and _kept(refreshed.stdout) == set(), refreshed.stdout
    # a failure of the changed test (lower still): it runs and fails although `known` is kept
    failing = _build(_project(tmp_path, singular_limit=2))
    assert failing.returncode != 0 and SINGULAR not in _kept(failing.stdout), failing.stdout
