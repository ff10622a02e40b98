"""dbt on a test's scratch DuckDB file, run the way the nightly runs it (a subprocess through the
warm client, the as_of in the env), on one warehouse path and one target folder per test
process: dbt's saved parse holds the profile's warehouse path, so a path of its own per call
made dbt parse the whole project every time; on the same path it re-parses nothing. The
test's file is moved to that path for the call and back after it (its WAL too, if one is left)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from orchestration import dbt_warm
from orchestration.dbt_invocations import CODE_DIGEST_ENV, RUN_ID_ENV
from orchestration.paths import dbt_project_dir

_FOLDER: list[Path] = []
# what only the nightly sets (orchestration/dbt_invocations.py): never inherited by a scratch build
_RUN_ONLY = (CODE_DIGEST_ENV, RUN_ID_ENV)


def _folder(near: Path) -> Path:
    """This process's dbt folder, made on first use beside the tests' own folders (one file
    system: the files are renamed, not copied) and removed when the process ends."""
    if not _FOLDER:
        _FOLDER.append(Path(tempfile.mkdtemp(prefix="c360-dbt-", dir=near.parent.parent)))
        atexit.register(shutil.rmtree, _FOLDER[0], True)
    return _FOLDER[0]


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def run(
    warehouse: Path,
    args: list[str],
    *,
    as_of: str,
    log_path: Path,
    variables: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`dbt <args>` on `warehouse` (the project's models, DuckDB target) at `as_of`; `variables`
    as `--vars` (a new value re-parses the project), `env` added to the process's. A hand-run
    build unless `env` says otherwise: no code digest, no run id."""
    folder = _folder(warehouse.absolute())
    runner = folder / "wh.duckdb"
    for stale in (runner, _wal(runner)):
        stale.unlink(missing_ok=True)
    os.replace(warehouse, runner)
    if _wal(warehouse).exists():
        os.replace(_wal(warehouse), _wal(runner))
    inherited = {k: v for k, v in os.environ.items() if k not in _RUN_ONLY}
    full_env = {**inherited, "C360_WAREHOUSE": str(runner), "C360_DBT_TARGET": "duckdb",
                "C360_DUCKDB_TEMP_DIR": str(folder / "tmp"), "C360_AS_OF": as_of,
                **(env or {})}  # fmt: skip
    try:
        # a subprocess, as Dagster runs dbt: dbt-duckdb keeps its database open in-process
        return subprocess.run(
            [dbt_warm.executable(), *args,
             "--project-dir", str(dbt_project_dir()), "--profiles-dir", str(dbt_project_dir()),
             *(["--vars", json.dumps(variables)] if variables else []),
             "--target-path", str(folder / "target"), "--log-path", str(log_path)],
            capture_output=True, text=True, env=full_env,
        )  # fmt: skip
    finally:
        os.replace(runner, warehouse)
        if _wal(runner).exists():
            os.replace(_wal(runner), _wal(warehouse))


def macro_project(root: Path) -> Path:
    """A new dbt project at `<root>/project` with the project's macros and a DuckDB profile on
    `<root>/warehouse.duckdb` (models/ empty): for tests of one macro or materialization."""
    project = root / "project"
    shutil.rmtree(project, ignore_errors=True)
    (project / "models").mkdir(parents=True)
    shutil.copytree(dbt_project_dir() / "macros", project / "macros")
    (project / "dbt_project.yml").write_text(
        "name: scratch\nversion: '0.1.0'\nconfig-version: 2\nprofile: scratch\n"
        "flags:\n  send_anonymous_usage_stats: false\nvars:\n  as_of: null\n"
    )
    (project / "profiles.yml").write_text(
        "scratch:\n  target: duckdb\n  outputs:\n    duckdb:\n      type: duckdb\n"
        f"      path: {root / 'warehouse.duckdb'}\n      schema: main\n      threads: 1\n"
    )
    return project
