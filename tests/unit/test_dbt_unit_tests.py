"""dbt's unit tests (the identity and segment SQL on fixed rows, `models/**/_*_unit_tests.yml`)
pass, run once here as dbt advises (in CI, not in production builds): the nightly's dbt build
leaves them out (tests/integration/test_dbt_invocations.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from orchestration import dbt_warm
from orchestration.paths import dbt_project_dir

DBT = Path(dbt_warm.executable())


def test_every_dbt_unit_test_passes_on_an_empty_warehouse(tmp_path):
    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    declared = set(manifest["unit_tests"])
    assert len(declared) >= 8  # identity (candidate, dropped, limit, name conflicts) and segments
    (tmp_path / "tmp").mkdir()
    env = {
        **os.environ,
        "C360_HOME": str(tmp_path),
        "C360_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "C360_DUCKDB_TEMP_DIR": str(tmp_path / "tmp"),
        "C360_DBT_TARGET": "duckdb",
        "C360_AS_OF": "2026-11-21",
        "C360_RUN_ID": "unit-tests",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    target = tmp_path / "target"
    done = subprocess.run(
        [str(DBT), "test", "--profiles-dir", ".", "--select", "test_type:unit",
         "--target-path", str(target)],
        cwd=dbt_project_dir(), env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    results = json.loads((target / "run_results.json").read_text())["results"]
    ran = {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert set(ran) == declared
    assert set(ran.values()) == {"pass"}
