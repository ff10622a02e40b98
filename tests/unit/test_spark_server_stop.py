"""SparkThriftServer.stop ends the server's whole process group, and a process that ignores
SIGTERM (a JVM whose shutdown hooks hang) is killed after the grace period, not waited on."""

from __future__ import annotations

import subprocess
import time

from orchestration.engine.spark_server import SparkThriftServer


def test_stop_kills_a_process_group_that_ignores_sigterm(tmp_path):
    server = SparkThriftServer(tmp_path)
    # a stand-in for the server: a shell ignoring SIGTERM, with a child in its group
    server._proc = subprocess.Popen(
        ["bash", "-c", "trap '' TERM; sleep 60 & wait"], start_new_session=True
    )
    time.sleep(0.2)  # the trap is set
    started = time.monotonic()
    server.stop(grace_seconds=0.5)
    assert server._proc.poll() is not None
    assert time.monotonic() - started < 5
    assert server._proc.returncode == -9  # SIGKILL: SIGTERM was ignored
