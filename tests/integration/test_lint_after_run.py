"""The SQL lint does not depend on what the warehouse holds (issue 18 core 1): after a nightly
run, sqlfluff with the dbt templater lints the models whose rendering reads the warehouse
(adapter.get_relation, run_query, is_incremental(), or a macro that does) in that same
C360_HOME, as `make lint` lints them in an empty one, and finds nothing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.paths import REPO_ROOT, home_env

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

READS_WAREHOUSE = re.compile(
    r"adapter\.(get_relation|get_columns_in_relation)|run_query|load_relation|is_incremental\(\)"
)
DBT = REPO_ROOT / "dbt_project"


def _models_reading_the_warehouse() -> list[Path]:
    macros = {
        m.group(1)
        for path in (DBT / "macros").rglob("*.sql")
        if READS_WAREHOUSE.search(text := path.read_text())
        for m in re.finditer(r"{%-?\s*macro\s+(\w+)", text)
    }
    calls = re.compile(r"\b(" + "|".join(sorted(macros)) + r")\s*\(") if macros else None
    return sorted(
        path
        for path in (DBT / "models").rglob("*.sql")
        if READS_WAREHOUSE.search(text := path.read_text()) or (calls and calls.search(text))
    )


def test_lint_passes_in_the_home_of_a_run(pipeline):
    home, report = pipeline
    assert report.success
    models = _models_reading_the_warehouse()
    names = {p.stem for p in models}
    # the model the issue found rendering differently once the run wrote its source
    assert "int_identity__edges" in names and len(models) >= 3
    env = os.environ | home_env(home.home)
    result = subprocess.run(
        [sys.executable, "-m", "sqlfluff", "lint", *map(str, models), "--processes", "1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "All Finished" in result.stdout
