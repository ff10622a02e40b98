"""A `c360 run` killed with SIGKILL — in ingestion, in dbt, in activation — never blocks the runs
after it: the next run marks the dead one failed, frees its `duckdb` pool slot and completes, and
the warehouse ends as an uninterrupted run leaves it (nothing duplicated, nothing lost). Two runs
on one home at once: the second refuses with one line."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from bench.soak_kills import start_run
from orchestration.activation.marts_guard import MartsNotConsistent, check_marts_built_for
from orchestration.paths import home_env
from tests.integration.conftest import AS_OF
from tests.integration.test_rerun_and_gates import RUN_METADATA, _fingerprint
from tests.warehouse_digest import table_digest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="kill")]

C360 = str(Path(sys.executable).parent / "c360")
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 900


def _env(home: Path, landing: Path) -> dict[str, str]:
    return {**os.environ, **home_env(home, landing)}


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home / "dagster"))


def _read_only(db: Path) -> sqlite3.Connection:
    """A connection that cannot write: opening Dagster's SQLite storage through an instance
    stamps its alembic version, and a stamp racing the run's own leaves two heads."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def _latest_worker_run(home: Path) -> str | None:
    """The newest run the CLI launched (tagged `c360/worker`), read straight from the run
    storage; None while the storage is still being created."""
    db = home / "dagster" / "storage" / "history" / "runs.db"
    if not db.exists():
        return None
    with closing(_read_only(db)) as con:
        row = con.execute(
            "select r.run_id from runs r join run_tags t on t.run_id = r.run_id"
            " where t.key = 'c360/worker' order by r.id desc limit 1"
        ).fetchone()
    return row[0] if row else None


def _started_steps(home: Path, run_id: str) -> set[str]:
    """Steps with a STEP_START event in the run's event-log shard."""
    db = home / "dagster" / "storage" / "history" / "runs" / f"{run_id}.db"
    if not db.exists():
        return set()
    with closing(_read_only(db)) as con:
        rows = con.execute(
            "select distinct step_key from event_logs where dagster_event_type = 'STEP_START'"
        ).fetchall()
    return {r[0] for r in rows}


def _kill_when_step_starts(env: dict[str, str], home: Path, step: str, settle: float) -> str | None:
    """Start a run, SIGKILL its process group `settle` seconds after `step` started; the run's
    id, or None when the run finished in the meantime."""
    before = _latest_worker_run(home)  # the runs before this one have all ended
    proc = start_run(env, AS_OF)
    deadline = time.monotonic() + RUN_TIMEOUT
    run_id, problem = None, ""
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                latest = _latest_worker_run(home)
                if latest is None or latest == before:
                    continue
                started = _started_steps(home, latest)
            except sqlite3.Error as exc:  # storage being created by the run: read it again
                problem = repr(exc)
                continue
            if step in started:
                run_id = latest
                time.sleep(settle)  # let the step get under way (dbt writing)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate()[0]
    assert run_id is not None, f"never saw {step} ({problem}):\n{output[-3000:]}"
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{output[-3000:]}"
    run = _instance(home).get_run_by_id(run_id)
    return run_id if run.status == dg.DagsterRunStatus.STARTED else None


def _run_to_end(env: dict[str, str]) -> str:
    done = subprocess.run(
        [C360, "run", "--as-of", AS_OF.isoformat(), "--log-level", "WARNING"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _state(warehouse: Path) -> dict[str, str]:
    """Raw, marts and contact history: what a duplicated or lost row would change. (A contact's
    id hashes the run that sent it, so the history is compared without it.)"""
    state = {
        table: digest
        for table, digest in _fingerprint(warehouse).items()
        if table.startswith(("raw.", "marts."))
    }
    with duckdb.connect(str(warehouse), read_only=True) as con:
        state["activation.contact_history"] = table_digest(
            con, "activation", "contact_history", RUN_METADATA | {"contact_id"}
        )
    return state


def test_runs_killed_in_ingestion_dbt_and_activation_release_their_slot(tmp_path):
    from demo.generator import generate

    landing = tmp_path / "landing"
    generate(300, 5, AS_OF, landing, tmp_path / "truth", progress=None)

    # A night's erasures rewrite its home's landing files: the killed home gets the files as
    # delivered, at the same path (raw rows carry their file's path), not the reference's leftovers.
    delivered = tmp_path / "delivered"
    shutil.copytree(landing, delivered)
    reference = tmp_path / "reference"
    _run_to_end(_env(reference, landing))
    shutil.rmtree(landing)
    shutil.copytree(delivered, landing)

    home = tmp_path / "home"
    env = _env(home, landing)
    killed: list[str] = []
    held: dict[str, bool] = {}
    for step, settle in (("shop__orders", 0.0), ("c360_dbt", 1.0), ("activation__file_drop", 0.0)):
        for _attempt in range(3):  # a short step can finish its run before the kill lands
            run_id = _kill_when_step_starts(env, home, step, settle)
            if run_id:
                break
        assert run_id, f"no run was killed in {step}"
        killed.append(run_id)
        holders = _instance(home).event_log_storage.get_concurrency_run_ids()
        held[step] = killed[-1] in holders
        if step == "c360_dbt":  # marts of no complete night: activation would refuse them
            with (
                duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con,
                pytest.raises(MartsNotConsistent),
            ):
                check_marts_built_for(con, AS_OF)
    # Killed mid-dbt, the run kept its pool slot; the runs after it still reached their steps.
    assert held["c360_dbt"], held
    output = _run_to_end(env)
    assert f"released nightly run {killed[-1]}" in output or not held["activation__file_drop"]

    instance = _instance(home)
    for run_id in killed:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE, run_id
        failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "is gone" in failure[-1].dagster_event.message
    assert not instance.event_log_storage.get_concurrency_run_ids()
    assert instance.get_runs(limit=1)[0].status == dg.DagsterRunStatus.SUCCESS

    got, want = _state(home / "warehouse.duckdb"), _state(reference / "warehouse.duckdb")
    assert got.keys() == want.keys()
    differ = sorted(t for t in want if got[t] != want[t])
    assert not differ, f"tables differ from the uninterrupted run: {differ}"


def test_a_second_run_on_the_same_home_refuses_with_one_line(tmp_path):
    from demo.generator import generate

    landing = tmp_path / "landing"
    generate(100, 6, AS_OF, landing, tmp_path / "truth", progress=None)
    home = tmp_path / "home"
    env = _env(home, landing)
    first = start_run(env, AS_OF)
    try:
        deadline = time.monotonic() + 300
        while not (home / "run.lock").exists() or not (home / "run.lock").read_text():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        second = subprocess.run(
            [C360, "run", "--as-of", AS_OF.isoformat()],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 3, second.stdout + second.stderr
        refusal = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(refusal) == 1 and "another c360 run is writing" in refusal[0], refusal
        assert f"pid {first.pid}" in refusal[0]
        assert "Traceback" not in second.stdout + second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
