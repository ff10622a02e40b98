"""A throwaway, real PostgreSQL server for tests (never a mock).

`PostgresServer().start()` runs initdb + pg_ctl on a fresh temp directory and a free loopback port:
listens on 127.0.0.1 only, unix socket inside the temp dir, trust auth (local test use only),
fsync off, UTC, byte-order collation (as DuckDB) with Unicode case mapping. `stop()` is
`pg_ctl stop -m fast` and removes the directory. Starts in ~1-2 s.

initdb/pg_ctl refuse to run as root: as root the server runs as an unprivileged OS user (the
Debian package's `postgres` user if present, else a system user `c360pg` created on first use).
Debian keeps the binaries in /usr/lib/postgresql/<ver>/bin, off PATH: they are found, not assumed.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from orchestration.engine.ports import free_port

OS_USERS = ("postgres", "c360pg")  # as root: the first that exists, else the last is created
SUPERUSER = "c360"  # the database superuser initdb creates (matches profiles.yml's default)
HOST = "127.0.0.1"


@dataclass(frozen=True)
class PgDatabase:
    """Connection info for one database on a test server."""

    host: str
    port: int
    user: str
    dbname: str
    password: str = ""

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    def connect(self, autocommit: bool = True) -> psycopg2.extensions.connection:
        con = psycopg2.connect(self.dsn, connect_timeout=10)
        con.autocommit = autocommit
        return con

    @contextmanager
    def cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        """An autocommit cursor on a connection that is closed afterwards."""
        con = self.connect()
        try:
            with con.cursor() as cur:
                yield cur
        finally:
            con.close()


def find_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: the newest /usr/lib/postgresql/<ver>/bin, else PATH."""

    def version(path: str) -> tuple[int, ...]:
        ver = Path(path).parent.parent.name
        return tuple(int(p) for p in re.findall(r"\d+", ver)) or (0,)

    found = [
        p
        for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if os.access(Path(p).parent / "pg_ctl", os.X_OK)
    ]
    if found:
        return Path(max(found, key=version)).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl", path=str(Path(initdb).parent)):
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or "
        "on PATH: `make test` installs the `postgresql` package (apt-get install postgresql)"
    )


def _unprivileged_user() -> pwd.struct_passwd | None:
    """None when not root; else the OS user the server runs as (created if missing)."""
    if os.geteuid() != 0:
        return None
    for name in OS_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    name = OS_USERS[-1]
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    # A parallel test worker may create the same user at the same moment: re-check, don't fail.
    proc = subprocess.run([*cmd, name], capture_output=True, text=True, check=False)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(
            f"initdb refuses to run as root and user {name!r} could not be created: {proc.stderr}"
        ) from None


def _world_traversable(path: Path) -> bool:
    """Every ancestor lets other users in (the unprivileged server user must reach its dir)."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def _base_tmp(os_user: pwd.struct_passwd | None) -> str:
    # Short paths keep the unix socket under its 107-byte limit.
    candidates = [tempfile.gettempdir(), "/tmp"]
    if os_user is None:
        return candidates[0]
    for c in candidates:
        if Path(c).is_dir() and _world_traversable(Path(c)):
            return c
    raise RuntimeError(f"no temp dir reachable by user {os_user.pw_name!r}: {candidates}")


class PostgresServer:
    """One throwaway PostgreSQL server. Use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        self.host = HOST
        self.port = 0
        self.user = SUPERUSER
        self.password = ""
        self.root: Path | None = None
        self._bin: Path | None = None
        self._os_user: pwd.struct_passwd | None = None
        self._running = False

    # -- paths -------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        assert self.root is not None, "server not started"
        return self.root / "server.log"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except (OSError, AssertionError):
            return ""

    # -- running commands as the server's OS user --------------------------------------------
    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        assert self._bin is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env |= {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC", "HOME": str(self.root)}
        kwargs: dict = {}
        if self._os_user is not None:
            kwargs = {
                "user": self._os_user.pw_uid,
                "group": self._os_user.pw_gid,
                "extra_groups": [],
            }
        return subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        if self._running:
            return self
        self._bin = find_bin_dir()
        self._os_user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="c360-pg-", dir=_base_tmp(self._os_user)))
        self.socket_dir.mkdir()
        if self._os_user is not None:
            self.root.chmod(0o700)
            for p in (self.root, self.socket_dir):
                os.chown(p, self._os_user.pw_uid, self._os_user.pw_gid)
        try:
            self._initdb()
            self._start_on_free_port()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self) -> None:
        base = ["initdb", "-D", str(self.data_dir), "-U", self.user, "--auth=trust", "-E", "UTF8"]
        base += ["--no-sync", "--no-instructions", "--lc-collate=C", "--lc-messages=C"]
        out = self._run(*base, "--lc-ctype=C.UTF-8")  # Unicode-aware lower()/upper()
        if out.returncode != 0:  # no C.UTF-8 locale on this system: plain C
            shutil.rmtree(self.data_dir, ignore_errors=True)
            out = self._run(*base, "--lc-ctype=C")
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{out.stdout}\n{out.stderr}")
        settings = {
            "listen_addresses": f"'{HOST}'",
            "unix_socket_directories": "'{}'".format(str(self.socket_dir).replace("'", "''")),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "jit": "off",
            # no parallel query: containers often have a tiny /dev/shm
            "max_parallel_workers_per_gather": "0",
            "max_connections": "200",
        }
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# c360 test server\n")
            fh.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _start_on_free_port(self, attempts: int = 5) -> None:
        for _ in range(attempts):
            self.port = free_port()
            out = self._run(
                "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file),
                "-o", f"-p {self.port}", "-w", "-t", "30",
            )  # fmt: skip
            if out.returncode == 0:
                self._running = True
                atexit.register(self.stop)
                return
            log = self.log_tail()
            if "could not bind" not in log and "already in use" not in log:
                break  # not a port race: report it
        raise RuntimeError(f"pg_ctl start failed:\n{out.stdout}\n{out.stderr}\n{self.log_tail()}")

    def _wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.database("postgres").connect().close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not reachable:\n{self.log_tail()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown, then remove the directory. Safe to call twice."""
        atexit.unregister(self.stop)
        if self._running:
            out = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
            if out.returncode != 0:
                self._kill_postmaster()
            self._running = False
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)  # postmaster's children exit when it is gone
        except (OSError, ValueError, IndexError):
            pass

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------
    def database(self, dbname: str) -> PgDatabase:
        return PgDatabase(self.host, self.port, self.user, dbname, self.password)

    def dsn(self, dbname: str = "postgres") -> str:
        return self.database(dbname).dsn

    def create_database(self, name: str) -> PgDatabase:
        """Create an empty database (UTF8, template0) and return its connection info."""
        con = self.database("postgres").connect()
        try:
            with con.cursor() as cur:
                cur.execute(
                    f"create database {psycopg2.extensions.quote_ident(name, cur)} template template0 encoding 'UTF8'"
                )
        finally:
            con.close()
        return self.database(name)


def sorted_rows(con: Any, table: str, skip: Iterable[str] = ()) -> list[tuple]:
    """Every row of `table` but its `skip` columns (run times), sorted with nulls first: rows of
    one table on two engines, compared as lists. `con` is any warehouse Connection."""
    cur = con.execute(f"select * from {table} limit 0")
    names = [d[0] for d in cur.description if d[0] not in set(skip)]
    cur.fetchall()
    quoted = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
    rows = con.execute(f"select {quoted} from {table}").fetchall()
    return sorted((tuple(r) for r in rows), key=lambda r: [(v is not None, str(v)) for v in r])
