"""A night's dbt invocations parse the project once: the run's as_of and id reach dbt as env vars
read only while executing, and the home keeps dbt's saved parse between invocations."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.dbt_events import NodeTimes
from orchestration.dbt_invocations import (
    AS_OF_ENV,
    RUN_ID_ENV,
    code_digest,
    keep_partial_parse,
    parse_cache,
    parse_mode,
    read_timings,
    record,
    run_values,
    seed_partial_parse,
    timing,
)
from orchestration.paths import dbt_project_dir, home_env


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "home"
    (root / "tmp").mkdir(parents=True)
    for key, value in home_env(root).items():
        monkeypatch.setenv(key, value)
    for key in (AS_OF_ENV, RUN_ID_ENV, "C360_DBT_VARS"):
        monkeypatch.delenv(key, raising=False)
    return root


def _event(name: str, invocation: str) -> str:
    return json.dumps({"info": {"name": name, "invocation_id": invocation, "msg": "..."}})


def test_parse_mode_reads_dbt_log_of_that_invocation(tmp_path):
    log = tmp_path / "dbt.log"
    log.write_text(
        "\n".join(
            [
                _event("UnableToPartialParse", "first"),
                "not json, PartialParsing in a plain line",
                _event("PartialParsingEnabled", "second"),
                _event("PartialParsingSkipParsing", "second"),
            ]
        )
    )
    assert parse_mode(log, "first") == "full"
    assert parse_mode(log, "second") == "partial"
    assert parse_mode(log, "third") == "unknown"
    assert parse_mode(tmp_path / "missing.log", "first") == "unknown"


def test_timing_sums_dbt_node_times_and_is_kept_per_run(tmp_path, home):
    target = tmp_path / "target"
    target.mkdir()
    times = NodeTimes(
        seconds={"model.c360.a": 1.25, "model.c360.b": 2.5, "operation.c360.hook": 0.0},
        elapsed=4.5,
        invocation_id="inv",
    )
    (target / "dbt.log").write_text(_event("PartialParsingSkipParsing", "inv"))
    entry = timing(times, target, "run-1", "c360_dbt_2", 6.0)
    assert entry is not None
    assert (entry.nodes, entry.node_seconds, entry.dbt_elapsed_seconds) == (3, 3.75, 4.5)
    assert (entry.parse, entry.wall_seconds, entry.step) == ("partial", 6.0, "c360_dbt_2")
    assert entry.slowest[:2] == (("model.c360.b", 2.5), ("model.c360.a", 1.25))
    assert entry.kinds == (("model", 2), ("operation", 1))
    record(entry)
    record(entry)
    assert read_timings("run-1") == [entry, entry]
    assert read_timings("run-2") == []
    # dbt reported no node (it failed before running any): nothing to record
    assert timing(NodeTimes(), tmp_path / "no-target", "run-1", "s", 1.0) is None


def test_saved_parse_goes_from_one_invocation_to_the_next(tmp_path, home):
    first, second = tmp_path / "first", tmp_path / "second"
    seed_partial_parse(first)  # nothing saved yet: nothing copied
    assert not (first / "partial_parse.msgpack").exists()
    first.mkdir()
    (first / "partial_parse.msgpack").write_bytes(b"parse of invocation 1")
    keep_partial_parse(first)
    assert parse_cache().read_bytes() == b"parse of invocation 1"
    assert parse_cache().is_relative_to(home)
    seed_partial_parse(second)
    assert (second / "partial_parse.msgpack").read_bytes() == b"parse of invocation 1"
    keep_partial_parse(tmp_path / "crashed-before-parsing")  # no file: the saved one stays
    assert parse_cache().read_bytes() == b"parse of invocation 1"


def test_run_values_are_set_for_the_block_only(monkeypatch):
    monkeypatch.setenv(RUN_ID_ENV, "outer")
    monkeypatch.delenv(AS_OF_ENV, raising=False)
    with run_values({AS_OF_ENV: "2026-11-21", RUN_ID_ENV: "inner"}):
        assert (os.environ[AS_OF_ENV], os.environ[RUN_ID_ENV]) == ("2026-11-21", "inner")
    assert AS_OF_ENV not in os.environ and os.environ[RUN_ID_ENV] == "outer"


def _dbt(target: Path, *args: str, env: dict[str, str]) -> str:
    """Run dbt in the project with `target` as its target and log folder; its invocation id."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args, "--profiles-dir", ".",
         "--target-path", str(target), "--log-path", str(target)],
        cwd=dbt_project_dir(), env={**os.environ, **env, "DBT_LOG_FORMAT": "json"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    results = json.loads((target / "run_results.json").read_text())
    return results["metadata"]["invocation_id"]


def test_a_new_as_of_reaches_dbt_without_a_reparse(tmp_path, home):
    """dbt's own log: after one parse, invocations for two as_of dates (env vars) reuse it, and
    the compiled SQL carries each date; the same change through --vars re-parses everything."""
    target = tmp_path / "target"
    select = ["--select", "int_identity__assignments", "consent_state"]
    compiled = target / "compiled/c360/models/intermediate/identity/int_identity__assignments.sql"
    _dbt(target, "compile", *select, env={AS_OF_ENV: "2026-11-20", RUN_ID_ENV: "r0"})
    for day in ("2026-11-21", "2026-11-22"):
        invocation = _dbt(target, "compile", *select, env={AS_OF_ENV: day, RUN_ID_ENV: "r-" + day})
        assert parse_mode(target / "dbt.log", invocation) == "partial", day
        sql = compiled.read_text()
        assert f"cast('{day}' as date)" in sql and f"':' || '{day}'" in sql
    invocation = _dbt(target, "compile", *select, "--vars", "{as_of: '2026-11-23'}", env={})
    assert parse_mode(target / "dbt.log", invocation) == "full"
    assert "cast('2026-11-23' as date)" in compiled.read_text()


def test_the_dbt_resource_starts_no_extra_dbt_and_no_adapter(monkeypatch) -> None:
    """The version comes from the installed package, not a `dbt --version` process; no adapter
    opens in the Dagster process, on any engine (dbt counts the rows itself)."""
    import importlib.metadata

    from dagster_dbt import DbtCliResource

    from orchestration.defs.resources import defs

    def no_process(*args, **kwargs):
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr("dagster_dbt.core.resource.check_output", no_process)
    resource = defs.resources["dbt"]
    assert str(resource._cli_version) == importlib.metadata.version("dbt-core")
    called = []
    monkeypatch.setattr(
        DbtCliResource, "_initialize_dbt_core_adapter", lambda self, args: called.append(args)
    )
    for target in ("duckdb", "postgres", "spark"):
        monkeypatch.setenv("C360_DBT_TARGET", target)
        assert resource._initialize_dbt_core_adapter(["build"]) is None
    assert called == []


def test_code_digest_follows_the_project_files_not_dbts_output(tmp_path):
    """What keeps a reusable_table's table (macros/reusable_table.sql): the digest changes with
    any project file a build reads, and not with what dbt writes (target/, logs/)."""
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir() / "macros", project / "macros")
    (project / "dbt_project.yml").write_text("name: c360\nvars: {a: 1}\n")
    first = code_digest(project)
    for written in ("target/manifest.json", "logs/dbt.log", "target/compiled/m.sql"):
        (project / written).parent.mkdir(parents=True, exist_ok=True)
        (project / written).write_text("{}")
    assert code_digest(project) == first
    (project / "dbt_project.yml").write_text("name: c360\nvars: {a: 2}\n")
    second = code_digest(project)
    assert second != first
    macro = project / "macros" / "connected_components.sql"
    macro.write_text(macro.read_text() + "\n")
    assert code_digest(project) not in (first, second)
    assert code_digest(dbt_project_dir()) == code_digest(dbt_project_dir())
