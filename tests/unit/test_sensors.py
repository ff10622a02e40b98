"""The landing-file sensor (new files → the nightly for today's partition, with a cursor) and the
run-failure alert (one line and an optional webhook post, no personal data) — issue 18, core 5."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from orchestration.defs.resources import Warehouse
from orchestration.defs.sensors import (
    FAILURE_WEBHOOK_ENV,
    failed_run,
    landing_files_sensor,
    run_failure_alert,
    todays_partition,
)

EMAIL = "quillon.zabrowski@example.org"


def _tick(landing: Path, cursor: str | None, instance: dg.DagsterInstance):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"warehouse": Warehouse(path=str(landing.parent / "wh.duckdb"),
                                          landing_dir=str(landing))},
    )  # fmt: skip
    return landing_files_sensor(context)


def _land(landing: Path, relative: str, mtime: float) -> Path:
    path = landing / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id\n1\n")
    os.utime(path, (mtime, mtime))
    return path


def test_todays_partition_is_the_window_holding_now():
    # the window for day D runs 02:00 D → 02:00 D+1 (UTC in tests' default zone)
    assert todays_partition(dt.datetime(2026, 11, 22, 1, 0, tzinfo=dt.UTC)) == "2026-11-21"
    assert todays_partition(dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)) == "2026-11-22"


def test_landing_sensor_requests_the_nightly_for_new_files_only(tmp_path):
    landing = tmp_path / "landing"
    instance = dg.DagsterInstance.ephemeral()
    assert isinstance(_tick(landing, None, instance), dg.SkipReason)  # no folder yet

    _land(landing, "crm/contacts/dt=2026-11-21/part-00000.csv", 1_000)
    first = _tick(landing, None, instance)
    assert not first.run_requests  # baseline: the files already there are the schedule's
    assert first.cursor == str(1_000 * 10**9)

    again = _tick(landing, first.cursor, instance)
    assert isinstance(again, dg.SkipReason) and "no new landing files" in again.skip_message

    # not landings: a live extract in progress, a hidden or `_` file, an unknown folder, a .tmp
    for name in (
        "shop/orders/dt=2026-11-22/live-000.csv",
        "shop/orders/dt=2026-11-22/.part.csv",
        "shop/orders/dt=2026-11-22/_SUCCESS.csv",
        "nosuch/entity/dt=2026-11-22/part-00000.csv",
        "shop/orders/dt=2026-11-22/part-00000.csv.tmp",
    ):
        _land(landing, name, 2_000)
    assert isinstance(_tick(landing, first.cursor, instance), dg.SkipReason)

    before = todays_partition(dt.datetime.now(dt.UTC))
    _land(landing, "shop/orders/dt=2026-11-22/part-00000.csv", 3_000)
    result = _tick(landing, first.cursor, instance)
    after = todays_partition(dt.datetime.now(dt.UTC))
    (request,) = result.run_requests
    assert request.partition_key in {before, after}
    assert request.tags["c360/trigger"] == "landing_files_sensor"
    assert result.cursor == str(3_000 * 10**9)
    # the next tick with the new cursor requests nothing
    assert isinstance(_tick(landing, result.cursor, instance), dg.SkipReason)


def test_landing_sensor_targets_the_nightly():
    # its default status follows C360_SCHEDULES: tests/unit/test_definitions.py
    assert landing_files_sensor.job_name == "nightly"


@dg.op
def leaks_an_email() -> None:
    raise ValueError(f"bad row for {EMAIL}")


@dg.job
def failing_job() -> None:
    leaks_an_email()


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def _failure_context(instance: dg.DagsterInstance):
    result = failing_job.execute_in_process(
        instance=instance, raise_on_error=False, tags={"dagster/partition": "2026-11-21"}
    )
    assert not result.success
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()


def test_run_failure_alert_posts_the_run_without_the_error_text(webhook, monkeypatch, capfd):
    url, received = webhook
    monkeypatch.setenv(FAILURE_WEBHOOK_ENV, url)
    instance = dg.DagsterInstance.ephemeral()
    context = _failure_context(instance)
    capfd.readouterr()  # the job's own logs quote the error; the alert's must not
    run_failure_alert(context)
    logged = "".join(capfd.readouterr())

    (payload,) = received
    run = context.dagster_run
    assert payload["event"] == "run_failure"
    assert (payload["job"], payload["run_id"]) == ("failing_job", run.run_id)
    assert payload["partition"] == "2026-11-21"
    assert payload["failed_steps"] == ["leaks_an_email"]
    assert payload["text"] == failed_run(instance, run).line()
    assert "leaks_an_email" in payload["text"] and run.run_id in payload["text"]
    assert EMAIL not in json.dumps(payload) and "bad row" not in json.dumps(payload)
    assert "c360 run failed: job failing_job" in logged
    assert EMAIL not in logged and "bad row" not in logged


def test_run_failure_alert_without_a_webhook_only_logs(webhook, monkeypatch):
    _, received = webhook
    monkeypatch.delenv(FAILURE_WEBHOOK_ENV, raising=False)
    run_failure_alert(_failure_context(dg.DagsterInstance.ephemeral()))
    assert received == []


def test_an_unreachable_webhook_does_not_fail_the_sensor(monkeypatch):
    monkeypatch.setenv(FAILURE_WEBHOOK_ENV, "http://127.0.0.1:9/nothing-listens")
    run_failure_alert(_failure_context(dg.DagsterInstance.ephemeral()))  # does not raise
