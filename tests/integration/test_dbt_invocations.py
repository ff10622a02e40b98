"""The nightly's dbt steps parse the project once: the run's as_of and id reach dbt as env vars
(not --vars) and each step starts from the previous one's saved parse (dbt's own log says so)."""

import duckdb
import pytest

from orchestration.dbt_invocations import parse_cache, read_timings

from .conftest import AS_OF

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]


def test_dbt_steps_after_the_first_reuse_the_parse(pipeline):
    home, report = pipeline
    assert report.success
    invocations = read_timings(report.run_id)
    # Python assets inside the dbt graph (phone numbers, the probabilistic links) split it.
    assert len(invocations) >= 2
    assert all(i.parse == "partial" for i in invocations[1:]), invocations
    assert all(i.nodes > 0 and i.wall_seconds >= i.node_seconds for i in invocations)
    assert parse_cache().is_file() and parse_cache().is_relative_to(home.home)


def test_the_nightly_builds_models_and_data_tests_but_not_dbt_unit_tests(pipeline):
    """dbt's unit tests run in CI (tests/unit/test_dbt_unit_tests.py), not every night."""
    _, report = pipeline
    kinds: dict[str, int] = {}
    for invocation in read_timings(report.run_id):
        for kind, count in invocation.kinds:
            kinds[kind] = kinds.get(kind, 0) + count
    assert kinds.get("model", 0) > 20 and kinds.get("test", 0) > 20, kinds
    assert "unit_test" not in kinds, kinds


def test_the_run_values_reach_dbt(pipeline):
    home, report = pipeline
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        builds = con.execute(
            "select distinct as_of, run_id, status from audit.dbt_model_builds"
        ).fetchall()
        merges = con.execute("select distinct run_id from audit.identity_merge_log").fetchall()
    assert builds == [(AS_OF, report.run_id, "success")]
    assert merges in ([], [(report.run_id,)])
