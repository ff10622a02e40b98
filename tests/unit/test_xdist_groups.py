"""`pytest -n 2 --dist loadgroup` (make test) keeps each xdist_group on one worker: the shared
integration run is built once and a module's own home is built once. pytest 9.2 with
pytest-xdist 3.8 silently stopped doing so (pytest-dev/pytest-xdist#1386)."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

GROUPED = """
import os, time, pytest
pytestmark = pytest.mark.xdist_group(name="one_home")

@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    time.sleep(0.05)
    with open(os.environ["XDIST_LOG"], "a") as log:
        log.write(f"grouped {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""
FREE = """
import os, time, pytest

@pytest.mark.parametrize("i", range(12))
def test_free(i):
    time.sleep(0.05)
    with open(os.environ["XDIST_LOG"], "a") as log:
        log.write(f"free {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""


def test_a_group_runs_on_one_worker_while_the_rest_spreads(tmp_path: Path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "test_free.py").write_text(FREE)
    log = tmp_path / "workers.log"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
         "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env={"XDIST_LOG": str(log), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    workers: dict[str, set[str]] = defaultdict(set)
    for line in log.read_text().splitlines():
        kind, worker = line.split()
        workers[kind].add(worker)
    assert len(workers["grouped"]) == 1, workers  # the group stayed together
    assert workers["grouped"] | workers["free"] == {"gw0", "gw1"}, workers  # and both worked
