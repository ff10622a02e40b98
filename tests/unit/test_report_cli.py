"""`c360 report --as-of DATE` in its own process: writes the report under C360_HOME/reports, and a
date without a run is one line `no run for DATE` with exit 1."""

import os
import subprocess
import sys

from orchestration.paths import home_env
from tests.unit.test_report import AS_OF, build_warehouse


def _report(home, as_of: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "report", "--as-of", as_of],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, **home_env(home)},
    )


def test_report_command(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    build_warehouse(home / "warehouse.duckdb")
    done = _report(home, AS_OF.isoformat())
    written = home / "reports" / "2026-03-10" / "index.html"
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{written} (5 charts, no data yet: none)"
    assert written.exists()

    missing = _report(home, "2026-01-01")
    assert missing.returncode == 1
    assert missing.stdout == ""
    (line,) = missing.stderr.splitlines()
    assert line.startswith("c360 report: no run for 2026-01-01")
    assert not (home / "reports" / "2026-01-01").exists()


def test_report_on_an_empty_home_is_one_line(tmp_path):
    done = _report(tmp_path, AS_OF.isoformat())
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("c360 report: no warehouse at")
    assert not (tmp_path / "reports").exists()
