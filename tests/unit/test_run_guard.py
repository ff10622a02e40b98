"""Dead runs are released and activation reads one consistent night: the run guard, the nightly
health verdict and the marts-built-for guard on a real (temporary) Dagster instance and DuckDB."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from orchestration.activation.health import last_nightly_health
from orchestration.activation.marts_guard import (
    ACTIVATION_MARTS,
    MartsNotConsistent,
    check_marts_built_for,
)
from orchestration.run_guard import (
    WORKER_TAG,
    RunBusy,
    exclusive_home,
    release_dead_runs,
    worker_alive,
    worker_tag,
)

AS_OF = dt.date(2026, 11, 21)


@pytest.fixture
def instance(tmp_path: Path):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as inst:
        inst.event_log_storage.set_concurrency_slots("duckdb", 1)
        yield inst


def _dead_worker() -> str:
    """The worker tag of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    tag = worker_tag(child.pid)
    child.wait()
    return tag


def _add(inst, run_id: str, status: dg.DagsterRunStatus, worker: str | None, job="nightly"):
    tags = {"dagster/partition": AS_OF.isoformat()}
    if worker:
        tags[WORKER_TAG] = worker
    inst.add_run(DagsterRun(job_name=job, run_id=run_id, status=status, tags=tags))


def test_worker_liveness_tells_a_dead_process_and_a_reused_pid():
    assert worker_alive(worker_tag()) is True
    assert worker_alive(_dead_worker()) is False
    host, pid, ticks = worker_tag().split(":")
    assert worker_alive(f"{host}:{pid}:{int(ticks) + 1}") is False  # same pid, other process
    assert worker_alive(f"elsewhere:{pid}:{ticks}") is None  # another host: cannot tell


def test_a_dead_run_is_marked_failed_and_its_pool_slot_freed(instance):
    _add(instance, "dead", dg.DagsterRunStatus.STARTED, _dead_worker())
    _add(instance, "alive", dg.DagsterRunStatus.STARTED, worker_tag())
    _add(instance, "canceled", dg.DagsterRunStatus.CANCELED, None)
    storage = instance.event_log_storage
    storage.claim_concurrency_slot("duckdb", "dead", "c360_dbt")
    storage.claim_concurrency_slot("duckdb", "canceled", "c360_dbt")  # canceled, slot kept
    assert storage.get_concurrency_run_ids() == {"dead", "canceled"}

    released = release_dead_runs(instance, released_by="test")

    assert {(r.run_id, r.marked_failed) for r in released} == {
        ("dead", True),
        ("canceled", False),
    }
    assert instance.get_run_by_id("dead").status == dg.DagsterRunStatus.FAILURE
    failure = instance.all_logs("dead", of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "is gone" in failure[-1].dagster_event.message
    assert instance.get_run_by_id("alive").status == dg.DagsterRunStatus.STARTED
    assert not storage.get_concurrency_run_ids()
    # a live run's slot is the next run's to wait for: a new claim is refused, not granted
    storage.claim_concurrency_slot("duckdb", "alive", "c360_dbt")
    blocked = storage.claim_concurrency_slot("duckdb", "next", "c360_dbt")
    assert blocked.slot_status != blocked.slot_status.CLAIMED
    assert release_dead_runs(instance) == []


def test_health_reads_the_latest_nightly_of_any_state(instance):
    _add(instance, "yesterday", dg.DagsterRunStatus.SUCCESS, None)
    assert last_nightly_health(instance).healthy
    _add(instance, "today", dg.DagsterRunStatus.STARTED, worker_tag())
    health = last_nightly_health(instance)
    assert not health.healthy and "has not finished" in health.reason
    assert health.run_id == "today"


def test_health_refuses_a_nightly_killed_halfway(instance):
    _add(instance, "yesterday", dg.DagsterRunStatus.SUCCESS, None)
    _add(instance, "today", dg.DagsterRunStatus.STARTED, _dead_worker())
    assert "died before finishing" in last_nightly_health(instance).reason
    release_dead_runs(instance)
    health = last_nightly_health(instance)
    assert not health.healthy and "ended FAILURE" in health.reason


def test_a_second_holder_of_the_home_is_refused_naming_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from orchestration.run_guard import exclusive_home\n"
            "with exclusive_home('nightly 2026-11-21'):\n"
            "    print('held', flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(RunBusy, match=f"pid {holder.pid}: nightly 2026-11-21"),
            exclusive_home("nightly 2026-11-22"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_home("nightly 2026-11-22"):  # the kernel dropped the dead holder's lock
        pass


def _builds(con, rows):
    """Append build rows, each started after every row before it."""
    con.execute("create schema if not exists audit")
    con.execute(
        "create table if not exists audit.dbt_model_builds (model_name varchar, as_of date, "
        "run_id varchar, invocation_id varchar, status varchar, started_at timestamp)"
    )
    start = con.execute("select count(*) from audit.dbt_model_builds").fetchone()[0]
    for i, (model, as_of, status) in enumerate(rows, start=start):
        con.execute(
            "insert into audit.dbt_model_builds values (?, ?, 'r', 'i', ?, "
            "timestamp '2026-11-22 02:00:00' + to_seconds(?))",
            [model, as_of, status, i],
        )


def test_activation_refuses_marts_of_two_days_or_a_build_that_never_finished():
    con = duckdb.connect()
    with pytest.raises(MartsNotConsistent, match="no record of a dbt build"):
        check_marts_built_for(con, AS_OF)
    yesterday = AS_OF - dt.timedelta(days=1)
    _builds(con, [(m, yesterday, "success") for m in ACTIVATION_MARTS])
    check_marts_built_for(con, yesterday)
    with pytest.raises(MartsNotConsistent, match="last built for as_of 2026-11-20"):
        check_marts_built_for(con, AS_OF)
    # today's build got as far as customer_360 and was killed before segment_membership
    _builds(con, [("customer_360", AS_OF, "success"), ("segment_membership", AS_OF, "started")])
    with pytest.raises(MartsNotConsistent) as refused:
        check_marts_built_for(con, AS_OF)
    assert "segment_membership: its last build (as_of 2026-11-21, run r) never finished" in str(
        refused.value
    )
    with pytest.raises(MartsNotConsistent):
        check_marts_built_for(con, yesterday)  # nor the old day: customer_360 is today's
    _builds(con, [(m, AS_OF, "success") for m in ACTIVATION_MARTS])
    check_marts_built_for(con, AS_OF)


def _fail_step(inst, run_id: str, step_key: str) -> None:
    from dagster._core.events import DagsterEvent
    from dagster._core.execution.plan.objects import StepFailureData
    from dagster._utils.error import SerializableErrorInfo

    inst.report_dagster_event(
        DagsterEvent(
            event_type_value=dg.DagsterEventType.STEP_FAILURE.value,
            job_name="nightly",
            step_key=step_key,
            event_specific_data=StepFailureData(
                error=SerializableErrorInfo("boom", [], "Failure"), user_failure_data=None
            ),
        ),
        run_id=run_id,
    )


def test_a_nightly_that_failed_only_in_activation_leaves_activation_to_retry(instance):
    _add(instance, "platform_down", dg.DagsterRunStatus.FAILURE, None)
    _fail_step(instance, "platform_down", "activation__platform_syncs_failed_row_share")
    health = last_nightly_health(instance)
    assert health.healthy and "only activation failed" in health.reason

    _add(instance, "dbt_failed", dg.DagsterRunStatus.FAILURE, None)
    _fail_step(instance, "dbt_failed", "c360_dbt")
    _fail_step(instance, "dbt_failed", "activation__file_drop")
    health = last_nightly_health(instance)
    assert not health.healthy and "failed steps: c360_dbt" in health.reason

    _add(instance, "killed", dg.DagsterRunStatus.FAILURE, None)  # no step failed: killed
    assert not last_nightly_health(instance).healthy
