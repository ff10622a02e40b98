"""A throwaway local Spark Thrift Server (the command of orchestration/engine/spark.py): its own
warehouse folder and metastore, a free loopback port, stopped with its whole process group. The
Spark e2e tests and `bench/nightly.py --engine spark` start one; a deployment points
C360_SPARK_HOST / C360_SPARK_PORT at its cluster's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from orchestration.engine.ports import free_port
from orchestration.engine.spark import SparkConnection, server_command

HOST = "127.0.0.1"


class SparkThriftServer:
    """`with SparkThriftServer(home) as server:` then `server.connect()` or its host/port."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.host = HOST
        self.port = 0
        self._proc: subprocess.Popen | None = None

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    def env(self) -> dict[str, str]:
        """What a client process (dbt, a step) needs to reach this server and its warehouse."""
        return {
            "C360_SPARK_WAREHOUSE": str(self.home),
            "C360_SPARK_HOST": self.host,
            "C360_SPARK_PORT": str(self.port),
        }

    def start(self, timeout: float = 180, wait: bool = True) -> SparkThriftServer:
        """Start the server; with wait=False return at once (call wait_ready() before use)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        with self.log_file.open("w") as log:
            self._proc = subprocess.Popen(
                server_command(self.port, self.host, self.home), stdout=log,
                stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True,
            )  # fmt: skip
        return self.wait_ready(timeout) if wait else self

    def wait_ready(self, timeout: float = 180) -> SparkThriftServer:
        """Block until the server answers a query; raises with its log when it exits or times out."""
        assert self._proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Spark Thrift Server exited:\n{self.log_tail()}")
            try:
                # the port first: thrift logs an error for every refused connection
                socket.create_connection((self.host, self.port), timeout=2).close()
                with self.connect() as con:
                    con.execute("select 1").fetchall()
                return self
            except Exception:  # not listening yet
                time.sleep(2)
        self.stop()
        raise TimeoutError(f"Spark Thrift Server not up in {timeout:.0f} s:\n{self.log_tail()}")

    def connect(self) -> SparkConnection:
        return SparkConnection.connect(self.host, self.port, staging=self.home / "staging")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def peak_rss_bytes(self) -> int:
        """The server's largest resident set since it started (the JVM's VmHWM), 0 when unknown."""
        if self._proc is None:
            return 0
        try:
            status = Path(f"/proc/{self._proc.pid}/status").read_text()
        except OSError:
            return 0
        line = next((ln for ln in status.splitlines() if ln.startswith("VmHWM:")), "")
        return int(line.split()[1]) * 1024 if line else 0

    def stop(self, grace_seconds: float = 5) -> None:
        """Stop the server's whole process group: SIGTERM, then SIGKILL after `grace_seconds`
        (the server is throwaway: its JVM's shutdown hooks can hold it past half a minute, and
        nothing of its warehouse or metastore is kept)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def __enter__(self) -> SparkThriftServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
