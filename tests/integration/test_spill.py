"""Spilling under C360_DUCKDB_MEMORY_LIMIT (issue 14, item 6).

DuckDB refuses `SET temp_directory` (even to the same path) once a query has spilled there. dbt-duckdb
re-ran the profile's `settings` on every new cursor, so the first model after a spill failed with
"Cannot switch temporary directory after the current one has been used"; Python connections to a
database already open in the process did the same. The spill folder is now set once per database,
and running out of memory anyway is reported naming memory and C360_DUCKDB_MEMORY_LIMIT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import dbt_warm
from orchestration.paths import dbt_project_dir

from .conftest import AS_OF, make_home

# One test reads the shared `pipeline` home: in its xdist group, so the nightly is built once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

DBT = dbt_warm.executable()

# Sorting 2M rows of md5 strings needs ~150 MB: under a 64MB limit it has to spill.
SPILLING_SQL = "select range as i, md5(range::varchar) as s from range(2000000) order by s"


def _spill_project(root: Path, temp_dir: Path) -> Path:
    """A two-model dbt project on the real c360 profile: `big` spills, `after` runs next."""
    project = root / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: spill_check\nversion: '1.0'\nconfig-version: 2\nprofile: c360\n"
        "models:\n  spill_check:\n    +materialized: table\n"
    )
    (project / "models" / "big.sql").write_text(SPILLING_SQL + "\n")
    # Counted while the database is still open: DuckDB removes its spill files when it closes.
    (project / "models" / "after.sql").write_text(
        "select (select count(*) from {{ ref('big') }}) as big_rows,\n"
        f"    (select count(*) from glob('{temp_dir}/duckdb_temp_*')) as spill_files\n"
    )
    return project


def _dbt_env(root: Path, memory_limit: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C360_", "DBT_"))}
    env.update(
        C360_HOME=str(root),
        C360_WAREHOUSE=str(root / "warehouse.duckdb"),
        C360_DUCKDB_TEMP_DIR=str(root / "spill"),
        C360_DUCKDB_MEMORY_LIMIT=memory_limit,
        C360_DUCKDB_THREADS="1",
    )
    return env


def _dbt_build(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DBT, "build", "--project-dir", str(project), "--profiles-dir", str(dbt_project_dir()),
         "--target-path", str(project / "target"), "--log-path", str(project / "logs")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_dbt_keeps_running_after_a_model_spilled(tmp_path: Path) -> None:
    """With the project's profile, a model that spills is followed by another that succeeds."""
    temp_dir = tmp_path / "spill"
    project = _spill_project(tmp_path, temp_dir)
    done = _dbt_build(project, _dbt_env(tmp_path, "64MB"))
    out = done.stdout + done.stderr
    assert "Cannot switch temporary directory" not in out
    assert done.returncode == 0, out[-3000:]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        big_rows, spill_files = con.execute("select * from main.after").fetchone()
    assert big_rows == 2_000_000
    assert spill_files >= 1, "the model did not spill: the limit no longer forces it"


def test_python_connection_opened_after_a_spill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second `connect` to a database this process has open, and that spilled, still works."""
    from orchestration.warehouse import connect

    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "spill"))
    monkeypatch.setenv("C360_DUCKDB_MEMORY_LIMIT", "64MB")
    monkeypatch.setenv("C360_DUCKDB_THREADS", "1")
    db = tmp_path / "warehouse.duckdb"
    first = connect(db)
    try:
        first.execute(f"create table big as {SPILLING_SQL}")
        assert list((tmp_path / "spill").glob("duckdb_temp_*")), "the query did not spill"
        second = connect(db)
        try:
            assert second.execute("select count(*) from big").fetchone() == (2_000_000,)
            setting = second.execute("select current_setting('temp_directory')").fetchone()
            assert Path(setting[0]) == (tmp_path / "spill").resolve()
        finally:
            second.close()
    finally:
        first.close()


def test_python_out_of_memory_names_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.warehouse import WarehouseOutOfMemory, warehouse

    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "spill"))
    monkeypatch.setenv("C360_DUCKDB_MEMORY_LIMIT", "32MB")
    # A list aggregate keeps everything in memory: spilling cannot help.
    with pytest.raises(WarehouseOutOfMemory) as raised, warehouse(tmp_path / "w.duckdb") as con:
        con.execute("select list(md5(range::varchar)) from range(5000000)").fetchall()
    message = str(raised.value)
    assert "out of memory" in message and "C360_DUCKDB_MEMORY_LIMIT" in message
    assert "32MB" in message


def test_warehouse_resource_out_of_memory_names_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python steps open the warehouse through the resource: same message."""
    from orchestration.defs.resources import Warehouse
    from orchestration.warehouse import WarehouseOutOfMemory

    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "spill"))
    monkeypatch.setenv("C360_DUCKDB_MEMORY_LIMIT", "32MB")
    resource = Warehouse(path=str(tmp_path / "w.duckdb"), landing_dir=str(tmp_path / "landing"))
    raises = pytest.raises(WarehouseOutOfMemory, match="C360_DUCKDB_MEMORY_LIMIT")
    with raises, resource.connection() as con:
        con.execute("select list(md5(range::varchar)) from range(5000000)").fetchall()


def test_dbt_asset_out_of_memory_names_the_limit(
    pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dbt step under an impossible limit fails with one message naming memory and the env
    var, not only dbt's exit code."""
    from dagster_dbt import DbtCliResource

    from orchestration.defs.transform.dbt import c360_dbt

    shared, _ = pipeline
    home = make_home(tmp_path / "home", monkeypatch)
    shutil.copy(shared.warehouse, home.warehouse)
    monkeypatch.setenv("C360_DUCKDB_MEMORY_LIMIT", "20MB")
    monkeypatch.setenv("C360_DUCKDB_THREADS", "1")
    result = dg.materialize(
        [c360_dbt],
        instance=home.instance,
        partition_key=AS_OF.isoformat(),
        resources={
            "dbt": DbtCliResource(
                dbt_executable=DBT,
                project_dir=str(dbt_project_dir()),
                profiles_dir=str(dbt_project_dir()),
            )
        },
        raise_on_error=False,
    )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures
    message = failures[0].step_failure_data.error.message
    assert "ran out of memory" in message, message
    assert "C360_DUCKDB_MEMORY_LIMIT" in message and "20MB" in message
