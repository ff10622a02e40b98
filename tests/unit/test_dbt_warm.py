"""The warm dbt (orchestration/dbt_warm.py) on real processes: a test's own server on its own
socket, the `c360-dbt` client of this environment, a tiny DuckDB dbt project. What it answers
equals what `dbt` answers; a client killed with SIGKILL takes its dbt child with it; SIGINT to
the client stops the child; without a server the client runs dbt itself and starts one; the
warehouse a command wrote is checkpointed when it ends."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration import dbt_warm

CLIENT = Path(sys.executable).parent / "c360-dbt"
DBT = Path(sys.executable).parent / "dbt"
# a query DuckDB needs many seconds for: the command is still running when the test acts
SLOW = "select count(*) from range(100000000000) t(i) where i % 7 = 3"
BIG = (
    "select count(distinct s) from (select md5(i::varchar) || md5((i + 1)::varchar) as s "
    "from range(4000000) t(i) order by s)"
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork server: Linux only")


def _project(root: Path) -> Path:
    (root / "macros").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: warm\nversion: '1.0'\nprofile: warm\nconfig-version: 2\n"
    )
    (root / "profiles.yml").write_text(
        "warm:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {root / 'warm.duckdb'}\n      threads: 1\n"
    )
    (root / "macros" / "ops.sql").write_text(
        "{% macro hello(name) %}{{ log('hello ' ~ name ~ ' from ' ~ env_var('WARM_WHO'), "
        "info=True) }}{% endmacro %}\n"
        f'{{% macro slow() %}}{{% do run_query("{SLOW}") %}}{{% endmacro %}}\n'
        # Python-side work: a SIGINT is seen between two steps (not inside a DuckDB query)
        "{% macro busy() %}{% for i in range(10 ** 9) %}{% endfor %}{% endmacro %}\n"
        # DuckDB holds a sort of ~4M hashed rows in memory (no spill under 1 GB): a peak
        f'{{% macro big() %}}{{% do run_query("{BIG}") %}}{{% endmacro %}}\n'
    )
    return root


@pytest.fixture
def warm(tmp_path, monkeypatch):
    """A server of the test's own on a socket of its own; stopped (and its children) after."""
    sock = Path(f"/tmp/c360-dbt-test-{os.getpid()}-{time.monotonic_ns()}.sock")
    monkeypatch.setenv("C360_DBT_WARM_SOCKET", str(sock))
    monkeypatch.setenv("C360_DBT_WARM_IDLE_SECONDS", "120")
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration.dbt_warm", "--serve"], start_new_session=True
    )
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield sock, server
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    for leftover in (sock, Path(f"{sock}.lock")):
        leftover.unlink(missing_ok=True)


def _children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def _run(cmd: list, project: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=project, capture_output=True, text=True, timeout=300,
        env={**os.environ, "WARM_WHO": "the client's env", **env},
    )  # fmt: skip


def test_a_command_through_the_server_answers_what_dbt_answers(warm, tmp_path):
    _, server = warm
    project = _project(tmp_path / "p")
    args = ["run-operation", "hello", "--args", "{name: ann}", "--profiles-dir", "."]
    through, direct = _run([CLIENT, *args], project), _run([DBT, *args], project)
    assert through.returncode == direct.returncode == 0, through.stdout + through.stderr
    assert "hello ann from the client's env" in through.stdout
    assert "hello ann from the client's env" in direct.stdout
    bad = _run([CLIENT, "run-operation", "nosuchmacro", "--profiles-dir", "."], project)
    assert bad.returncode == _run([DBT, "run-operation", "nosuchmacro", "--profiles-dir", "."],
                                  project).returncode == 2  # fmt: skip
    assert not _children(server.pid), "children exit when their command ends"


def test_a_command_through_the_server_leaves_the_warehouse_checkpointed(warm, tmp_path):
    """As a dbt process's own exit does: what the command wrote is in the database file, with
    no write-ahead log beside it for the next process to replay (or for a copy to miss)."""
    project = _project(tmp_path / "p")
    (project / "models").mkdir()
    (project / "models" / "numbers.sql").write_text("select range as n from range(1000)")
    done = _run([CLIENT, "run", "--profiles-dir", "."], project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (project / "warm.duckdb.wal").exists()
    import duckdb

    with duckdb.connect(str(project / "warm.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from main.numbers").fetchone() == (1000,)


def test_a_killed_client_takes_its_dbt_child_with_it(warm, tmp_path):
    _, server = warm
    project = _project(tmp_path / "p")
    client = subprocess.Popen([CLIENT, "run-operation", "slow", "--profiles-dir", "."],
                              cwd=project, stdout=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not _children(server.pid):
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.05)
    time.sleep(2)  # dbt is inside the slow query
    assert client.poll() is None and _children(server.pid)
    client.kill()
    client.wait()
    deadline = time.monotonic() + 5
    while _children(server.pid):
        assert time.monotonic() < deadline, "the dbt child outlived its killed client"
        time.sleep(0.05)


def test_sigint_to_the_client_stops_the_dbt_child(warm, tmp_path):
    _, server = warm
    project = _project(tmp_path / "p")
    client = subprocess.Popen([CLIENT, "run-operation", "busy", "--profiles-dir", "."],
                              cwd=project, stdout=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not _children(server.pid):
        assert time.monotonic() < deadline and client.poll() is None
        time.sleep(0.05)
    time.sleep(2)
    client.send_signal(signal.SIGINT)
    out, _ = client.communicate(timeout=30)
    assert client.returncode != 0, out
    assert not _children(server.pid)


def test_without_a_server_the_client_runs_dbt_and_starts_one(tmp_path, monkeypatch):
    sock = Path(f"/tmp/c360-dbt-test-{os.getpid()}-{time.monotonic_ns()}.sock")
    monkeypatch.setenv("C360_DBT_WARM_SOCKET", str(sock))
    # long enough to outlast the first command under load, short enough to see it end
    monkeypatch.setenv("C360_DBT_WARM_IDLE_SECONDS", "15")
    project = _project(tmp_path / "p")
    first = _run([CLIENT, "run-operation", "hello", "--args", "{name: bo}", "--profiles-dir",
                  "."], project)  # fmt: skip
    assert first.returncode == 0 and "hello bo" in first.stdout
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert time.monotonic() < deadline, "no server started for the next command"
        time.sleep(0.05)
    deadline = time.monotonic() + 60
    while sock.exists():
        assert time.monotonic() < deadline, "an idle server does not exit"
        time.sleep(0.1)


def test_the_resource_runs_the_client_unless_turned_off(monkeypatch):
    monkeypatch.setenv("C360_DBT_WARM", "1")
    assert dbt_warm.executable() == str(CLIENT)
    monkeypatch.setenv("C360_DBT_WARM", "0")
    assert dbt_warm.executable() == str(DBT)


def test_each_command_reports_its_own_peak_resident_set(warm, tmp_path):
    """The children are the server's, not the run's: each answers its peak with its exit code
    and the client appends it to C360_DBT_WARM_PEAKS, where a measurement of a run reads it."""
    project = _project(tmp_path / "p")
    peaks = tmp_path / "peaks.jsonl"
    small = _run([CLIENT, "run-operation", "hello", "--args", "{name: al}", "--profiles-dir",
                  "."], project, C360_DBT_WARM_PEAKS=str(peaks))  # fmt: skip
    big = _run([CLIENT, "run-operation", "big", "--profiles-dir", "."], project,
               C360_DBT_WARM_PEAKS=str(peaks))  # fmt: skip
    assert small.returncode == big.returncode == 0, small.stdout + big.stdout + big.stderr
    lines = [json.loads(line) for line in peaks.read_text().splitlines()]
    assert len(lines) == 2 and all(line["pid"] != os.getpid() for line in lines)
    small_peak, big_peak = (line["max_rss_bytes"] for line in lines)
    # a dbt process is well over 50 MB; the sort holds hundreds of MB more
    assert small_peak > 50e6 and big_peak > small_peak + 150e6, lines
    quiet = _run([CLIENT, "run-operation", "hello", "--args", "{name: al}", "--profiles-dir",
                  "."], project)  # fmt: skip
    assert quiet.returncode == 0 and len(peaks.read_text().splitlines()) == 2, "only when asked"


def test_prewarm_starts_one_server_that_serves_the_next_commands(tmp_path, monkeypatch):
    sock = Path(f"/tmp/c360-dbt-test-{os.getpid()}-{time.monotonic_ns()}.sock")
    monkeypatch.setenv("C360_DBT_WARM_SOCKET", str(sock))
    monkeypatch.setenv("C360_DBT_WARM_IDLE_SECONDS", "120")
    monkeypatch.setenv("C360_DBT_WARM", "0")
    assert not dbt_warm.prewarm() and not sock.exists(), "warm dbt off: nothing started"
    monkeypatch.setenv("C360_DBT_WARM", "1")
    try:
        assert dbt_warm.prewarm()
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert time.monotonic() < deadline, "prewarm started no server"
            time.sleep(0.05)
        server = int(Path(f"{sock}.lock").read_text())
        assert not dbt_warm.prewarm(), "a server answers: no second one"
        deadline = time.monotonic() + 30
        while _children(server):
            assert time.monotonic() < deadline, "the probe's child did not exit"
            time.sleep(0.05)
        project = _project(tmp_path / "p")
        peaks = tmp_path / "peaks.jsonl"
        done = _run([CLIENT, "run-operation", "hello", "--args", "{name: cy}", "--profiles-dir",
                     "."], project, C360_DBT_WARM_PEAKS=str(peaks))  # fmt: skip
        assert done.returncode == 0 and "hello cy" in done.stdout, done.stdout + done.stderr
        assert peaks.exists(), "the command ran in a child of the prewarmed server"
    finally:
        dbt_warm.stop()


def test_a_run_starts_the_warm_server_when_its_resources_are_set_up(tmp_path, monkeypatch):
    from orchestration.defs.resources import C360DbtCli
    from orchestration.paths import dbt_project_dir

    sock = Path(f"/tmp/c360-dbt-test-{os.getpid()}-{time.monotonic_ns()}.sock")
    monkeypatch.setenv("C360_DBT_WARM_SOCKET", str(sock))
    monkeypatch.setenv("C360_DBT_WARM_IDLE_SECONDS", "120")
    monkeypatch.setenv("C360_DBT_WARM", "1")
    resource = C360DbtCli(dbt_executable=dbt_warm.executable(),
                          project_dir=str(dbt_project_dir()),
                          profiles_dir=str(dbt_project_dir()))  # fmt: skip
    try:
        resource.setup_for_execution(dg.build_init_resource_context())
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert time.monotonic() < deadline, "the resource's setup started no server"
            time.sleep(0.05)
    finally:
        dbt_warm.stop()


def test_a_second_server_leaves_the_first_ones_pid(warm):
    """Two runs prewarming at once: the second server finds the lock taken and exits, and the
    first one's pid stays in the lock file (stop() and the bench read it)."""
    sock, server = warm
    second = subprocess.Popen(
        [sys.executable, "-m", "orchestration.dbt_warm", "--serve"], start_new_session=True
    )
    assert second.wait(timeout=60) == 0
    assert Path(f"{sock}.lock").read_text() == str(server.pid)
    assert dbt_warm.stop()
    assert server.wait(timeout=30) == 128 + signal.SIGTERM


def test_stop_ends_the_server_and_removes_its_files(warm):
    sock, server = warm
    assert dbt_warm.stop()
    assert server.wait(timeout=30) == 128 + signal.SIGTERM
    assert not sock.exists() and not Path(f"{sock}.lock").exists()
    assert not dbt_warm.stop(), "nothing left to stop"


def test_a_server_that_closes_before_a_child_takes_the_command_leaves_it_to_dbt(
    tmp_path, monkeypatch
):
    # a server stopping at that moment: takes the command, then closes the connection unanswered
    sock = Path(f"/tmp/c360-dbt-test-{os.getpid()}-{time.monotonic_ns()}.sock")
    monkeypatch.setenv("C360_DBT_WARM_SOCKET", str(sock))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen(1)

    def take_then_close() -> None:
        conn, _ = listener.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)  # the command, read and dropped
        for fd in fds:  # the client's stdout among them: held, it would never see EOF
            os.close(fd)
        conn.close()

    closing = threading.Thread(target=take_then_close, daemon=True)
    closing.start()
    project = _project(tmp_path / "p")
    try:
        ran = _run([CLIENT, "run-operation", "hello", "--args", "{name: cy}", "--profiles-dir",
                    "."], project)  # fmt: skip
    finally:
        listener.close()
        sock.unlink(missing_ok=True)
    assert not closing.is_alive(), "the client reached the stopping server"
    assert ran.returncode == 0 and "hello cy" in ran.stdout, ran.stdout + ran.stderr
