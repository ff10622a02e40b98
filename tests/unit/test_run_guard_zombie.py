"""A run whose process was killed but not yet reaped (a zombie: a SIGKILLed step process of a
multiprocess run, waiting for init) is dead to the run guard — its pool slot can be freed."""

import subprocess
import time
from pathlib import Path

from orchestration.run_guard import worker_alive, worker_tag


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_killed_process_not_yet_reaped_is_not_alive():
    child = subprocess.Popen(["sleep", "30"])
    try:
        tag = worker_tag(child.pid)
        assert worker_alive(tag) is True
        child.kill()  # not waited for: a zombie until reaped below
        deadline = time.monotonic() + 10
        while _state(child.pid) != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert worker_alive(tag) is False
    finally:
        child.kill()
        child.wait()
