"""A warm dbt: a server process that has imported dbt once forks a child per dbt command, so a
Dagster dbt step does not pay dbt's Python start-up (importing dbt-core and the adapter takes
seconds, more than dbt's own work in a small night's step).

`c360-dbt ARGS...` (the client, this environment's console script) is what the dbt resource runs
instead of `dbt`; it behaves as `dbt ARGS...` would:

* it connects to the server of this environment (a Unix socket under the temp folder, one per
  Python executable and dbt-core version), sends its arguments, environment and working folder
  and hands over its stdin, stdout and stderr; the server forks a child that takes all of them
  and runs dbt's own command line; the client exits with the child's exit code;
* SIGINT and SIGTERM sent to the client (how dagster-dbt stops dbt) are passed on to the child;
  a client that dies (SIGKILL of its run) closes the socket, and the child kills itself at once,
  so nothing keeps writing to the warehouse after its run is gone;
* a child that ran its command closes dbt's connections and runs the exit handlers before it
  exits, as dbt's own exit does: DuckDB checkpoints the warehouse, no write-ahead log is left;
* with no server (the first command, or after it stopped when idle for `IDLE_SECONDS`) the
  client starts one in the background for the next command and runs dbt itself; a server that
  closes the connection before a child took the command (it was stopping) gets the same: the
  command's result never depends on the server;
* a run starts one at its beginning (`prewarm`, from the dbt resource's setup): the server
  imports dbt while the run's first steps (ingestion) work, so even a night's first dbt step,
  after a day with no server, is served warm;
* each child answers its own peak resident set with its exit code; with `C360_DBT_WARM_PEAKS`
  set the client appends it to that file (one JSON line per command): the children are the
  server's, not the run's, so a measurement of the run's memory (bench/nightly.py) reads them
  there.

`C360_DBT_WARM=0` turns it off (the resource then runs `dbt`); `python -m orchestration.dbt_warm
--stop` stops the server (`make test` does at its end, so no process outlives the suite). Linux only (fork); elsewhere the
resource runs `dbt`. The server imports dbt only (no project code): each child parses the
project and reads its profile from the client's environment, as a fresh dbt would.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

IDLE_SECONDS = 600.0  # a server no command reached for this long exits
_HEADER = struct.Struct("!I")


def enabled() -> bool:
    """Whether dbt commands go through the warm server (Linux, C360_DBT_WARM not 0)."""
    return sys.platform == "linux" and os.environ.get("C360_DBT_WARM", "1") != "0"


def executable() -> str:
    """What runs dbt commands: the warm client (this environment's `c360-dbt`) when enabled and
    installed, else this environment's `dbt`."""
    client = Path(sys.executable).parent / "c360-dbt"
    return str(client) if enabled() and client.exists() else _real_dbt()


def socket_path() -> Path:
    """The server's socket: one per Python executable, dbt-core and adapter versions and this
    module's code (a server started by older code is not reached), in /tmp whatever TMPDIR
    says, so every command of the environment finds the same server; C360_DBT_WARM_SOCKET
    names another (a test's own server)."""
    if os.environ.get("C360_DBT_WARM_SOCKET"):
        return Path(os.environ["C360_DBT_WARM_SOCKET"])
    versions = [metadata.version(p) for p in ("dbt-core", "dbt-duckdb") if _installed(p)]
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    key = "|".join([sys.executable, *versions, code])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path("/tmp") / f"c360-dbt-{os.getuid()}-{digest}.sock"


def _installed(package: str) -> bool:
    try:
        metadata.version(package)
    except metadata.PackageNotFoundError:
        return False
    return True


def _send_message(conn: socket.socket, payload: dict, fds: tuple[int, ...] = ()) -> None:
    data = json.dumps(payload).encode()
    message = _HEADER.pack(len(data)) + data
    if fds:
        conn.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        conn.sendall(message)


def _receive_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("the other side closed the connection")
        data += chunk
    return data


def _receive_message(conn: socket.socket) -> tuple[dict, list[int]]:
    """One message and the file descriptors sent with it."""
    header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
    if len(header) < _HEADER.size:
        if not header:
            raise EOFError("the other side closed the connection")
        header += _receive_exact(conn, _HEADER.size - len(header))
    (size,) = _HEADER.unpack(header)
    return json.loads(_receive_exact(conn, size)), fds


# --- client --------------------------------------------------------------------------------


def _real_dbt() -> str:
    return str(Path(sys.executable).parent / "dbt")


def _start_server() -> None:
    """A server in the background (its own session, no terminal, output discarded)."""
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-m", "orchestration.dbt_warm", "--serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )


def _answering() -> bool:
    """Whether a server listens on this environment's socket."""
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as probe:
        try:
            probe.connect(str(socket_path()))
        except OSError:
            return False
    return True


def prewarm() -> bool:
    """Start a server in the background unless warm dbt is off or one already answers (a
    connection that sends nothing: the server's child finds no command and exits). Whether one
    was started. A second server started at the same moment exits at once (its lock)."""
    if not enabled() or not (Path(sys.executable).parent / "c360-dbt").exists():
        return False
    if _answering():
        return False
    _start_server()
    return True


def _record_peak(answer: dict) -> None:
    """Append the child's peak resident set to `C360_DBT_WARM_PEAKS` (when set)."""
    target = os.environ.get("C360_DBT_WARM_PEAKS")
    if target and "max_rss_bytes" in answer:
        line = {"pid": answer.get("pid"), "max_rss_bytes": int(answer["max_rss_bytes"])}
        # a measurement's side channel: never what decides the command's exit code
        with contextlib.suppress(OSError), open(target, "a") as sink:
            sink.write(json.dumps(line) + "\n")


def main(argv: list[str] | None = None) -> int:
    """`c360-dbt ARGS...`: run `dbt ARGS...` in a child of the warm server, or dbt itself."""
    args = list(sys.argv[1:] if argv is None else argv)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(socket_path()))
        _send_message(
            conn,
            {"argv": args, "env": dict(os.environ), "cwd": os.getcwd()},
            (0, 1, 2),
        )
    except OSError:
        conn.close()
        _start_server()
        os.execv(_real_dbt(), [_real_dbt(), *args])

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            _send_message(conn, {"signal": signum})

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    started = False
    try:
        while True:
            answer, _ = _receive_message(conn)
            if "exit" in answer:
                _record_peak(answer)
                return int(answer["exit"])
            started = started or "started" in answer
    except (EOFError, OSError, ValueError):
        if not started:
            # the server closed before a child took the command (it was stopping): nothing ran
            conn.close()
            os.execv(_real_dbt(), [_real_dbt(), *args])
        print("c360-dbt: the dbt process ended without an exit code", file=sys.stderr)
        return 1


# --- server --------------------------------------------------------------------------------


def _child(conn: socket.socket) -> None:
    """In the forked child: take the client's command, stdio, environment and folder, run dbt,
    answer its exit code. Never returns."""
    code = 1
    try:
        try:
            request, fds = _receive_message(conn)
        except EOFError:  # a probe (prewarm, _answering) that only checked the server is there
            os._exit(0)
        _send_message(conn, {"started": os.getpid()})
        for target, fd in zip((0, 1, 2), fds, strict=False):
            os.dup2(fd, target)
            os.close(fd)
        # the server's streams were made for /dev/null: a terminal gets lines as they come
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])

        def watch() -> None:
            # the client's signals, or its end: a client gone (killed) takes the child with it
            while True:
                try:
                    message, _ = _receive_message(conn)
                except (EOFError, OSError, ValueError):
                    os.kill(os.getpid(), signal.SIGKILL)
                    return
                if "signal" in message:
                    os.kill(os.getpid(), int(message["signal"]))

        threading.Thread(target=watch, daemon=True).start()
        from dbt.cli.main import cli

        sys.argv = ["dbt", *request["argv"]]
        try:
            cli.main(args=request["argv"], prog_name="dbt")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KeyboardInterrupt:
            code = 130
        _close_databases()
    except BaseException:  # a child must answer and exit whatever happened
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(Exception):
            _send_message(conn, {"exit": code, **_peak()})
        os._exit(code)


def _peak() -> dict:
    """This process's peak resident set (and its own children's, if dbt started any): Linux
    gives ru_maxrss in KiB."""
    import resource

    largest = max(resource.getrusage(who).ru_maxrss
                  for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))  # fmt: skip
    return {"pid": os.getpid(), "max_rss_bytes": largest * 1024}


def _close_databases() -> None:
    """What a dbt process's own exit does and os._exit skips: close the adapters' connections
    and run the exit handlers (dbt-duckdb's drops its database), so DuckDB checkpoints the
    warehouse and leaves no write-ahead log for the next process to replay."""
    import atexit
    import gc

    from dbt.adapters.factory import cleanup_connections

    cleanup_connections()
    atexit._run_exitfuncs()
    gc.collect()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def stop() -> bool:
    """Stop this environment's server (SIGTERM to the pid its lock file holds), if one runs;
    its children finish their commands. Whether one was running."""
    lock = Path(f"{socket_path()}.lock")
    try:
        pid = int(lock.read_text() or 0)
    except (OSError, ValueError):
        return False
    if not pid:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def serve(idle_seconds: float | None = None) -> None:
    """Listen on the socket, import dbt, then fork a child per connection until none came for
    `idle_seconds` (C360_DBT_WARM_IDLE_SECONDS, else IDLE_SECONDS). One server per socket: a
    second one exits (the lock file says)."""
    if idle_seconds is None:
        idle_seconds = float(os.environ.get("C360_DBT_WARM_IDLE_SECONDS") or IDLE_SECONDS)
    path = socket_path()
    # opened without truncating: a second server that fails to take the lock must not empty
    # the pid the first one wrote (stop() and the bench read it)
    lock = os.fdopen(os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600), "r+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    signal.signal(signal.SIGTERM, _exit_on_signal)
    # listening before dbt is imported: a command that comes meanwhile waits in the queue for
    # a warm child instead of finding no socket, running dbt cold and starting another server
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    listener.settimeout(idle_seconds)
    try:
        import dbt.cli.main  # the point of the server: imported once

        with contextlib.suppress(ImportError):
            import dbt.adapters.duckdb  # noqa: F401
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
            conn.settimeout(None)
            if os.fork() == 0:
                listener.close()
                lock.close()  # the server's lock stays with the server
                # as in a dbt process of its own: SIGTERM ends it, children are waited for
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _child(conn)
            conn.close()
    finally:
        for leftover in (path, Path(f"{path}.lock")):
            leftover.unlink(missing_ok=True)
        listener.close()
        lock.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve()
    elif sys.argv[1:2] == ["--stop"]:
        print("stopped the warm dbt server" if stop() else "no warm dbt server running")
    else:
        sys.exit(main())
