"""A throwaway, real PostgreSQL server for tests: initdb + pg_ctl on a temp dir and a free
loopback port. initdb/pg_ctl refuse to run as root, so as root they run as an unprivileged user."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

USER = "c360test"


def _bin_dir() -> Path:
    """Debian keeps server binaries in /usr/lib/postgresql/<ver>/bin (not on PATH): find them."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: `make test` installs the postgresql package"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
        )
    return ["runuser", "-u", USER, "--"]


@dataclass
class PostgresServer:
    root: Path
    port: int = 0
    user: str = "postgres"

    def start(self) -> PostgresServer:
        bindir = _bin_dir()
        self.port = _free_port()
        data, sock = self.root / "data", self.root / "sock"
        data.mkdir(parents=True)
        sock.mkdir()
        prefix = _as_user()
        if prefix:
            subprocess.run(["chown", "-R", USER, str(self.root)], check=True)
            self.root.chmod(0o755)
            for parent in self.root.parents:  # the unprivileged user must reach its data dir
                if str(parent).startswith("/tmp") and parent != Path("/tmp"):
                    parent.chmod(parent.stat().st_mode | 0o711)
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        opts = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={sock} -c fsync=off"
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(self.root / "server.log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.time() + 20
        while True:
            try:
                psycopg2.connect(self.dsn("postgres")).close()
                break
            except psycopg2.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self._prefix, self._bindir, self._data = prefix, bindir, data
        return self

    def dsn(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def create_database(self, name: str) -> str:
        con = psycopg2.connect(self.dsn("postgres"))
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'create database "{name}"')
        con.close()
        return name

    def stop(self) -> None:
        subprocess.run(
            [
                *self._prefix,
                str(self._bindir / "pg_ctl"),
                "-D",
                str(self._data),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
