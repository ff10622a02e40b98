"""The embedded DuckDB warehouse: one place for its settings, shared by dbt, Python steps and the CLI.

dbt reads the same env vars in dbt_project/profiles.yml, so threads, memory and spill location are
configured once (C360_DUCKDB_THREADS, C360_DUCKDB_MEMORY_LIMIT, C360_DUCKDB_TEMP_DIR).

Each is applied once per database: dbt passes them as `config_options` when it opens the file, and
`connect` sets only what differs from the open database. DuckDB refuses `SET temp_directory` (even
to the same path) once a query has spilled there, so setting it again is what broke spilling.

One memory budget per process: C360_DUCKDB_MEMORY_LIMIT is what all the DuckDB databases a process
has open may use together, not each. While a scratch database is open next to the warehouse, the
scratches together get C360_DUCKDB_SCRATCH_SHARE of the budget (default 0.5) and the warehouse the
rest; alone, either gets the whole budget (`memory_shares`). Every `connect` and `scratch` call
re-divides the budget among the databases still open, so a closed scratch gives its share back at
the next open (or when a `warehouse()` block ends).
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from orchestration.engine import Connection
from orchestration.paths import c360_home, warehouse_path

SCHEMAS = (
    "raw",
    "quarantine",
    "reference",
    "staging",
    "intermediate",
    "marts",
    "activation",
    "audit",
)


MEMORY_ENV = "C360_DUCKDB_MEMORY_LIMIT"
# DuckDB's limit covers its buffer pool, not the process: the Python steps' Arrow tables and
# pandas frames sit on top. 3GB leaves about 1GB for them, so a 1M-customer night stays under
# 4GB resident (docs/benchmarks.md); a bigger machine raises it for speed.
DEFAULT_MEMORY_LIMIT = "3GB"
SCRATCH_SHARE_ENV = "C360_DUCKDB_SCRATCH_SHARE"
DEFAULT_SCRATCH_SHARE = 0.5
_MIB = 1024**2
_UNITS = {"b": 1, "byte": 1, "bytes": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
          "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}  # fmt: skip
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)

# What DuckDB says when a query needs more memory than the limit and spilling cannot help.
_OUT_OF_MEMORY = ("out of memory error", "could not allocate", "failed to allocate")


def duckdb_settings() -> dict[str, str]:
    """Threads, memory limit and spill directory; the same values dbt's profile reads."""
    temp_dir = os.environ.get("C360_DUCKDB_TEMP_DIR", str(c360_home() / "tmp"))
    return {
        "threads": os.environ.get("C360_DUCKDB_THREADS", "2"),
        "memory_limit": os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_LIMIT),
        "temp_directory": str(Path(temp_dir).resolve()),
        "TimeZone": "UTC",
    }


def worker_processes() -> int:
    """How many processes a step may share Python work among: C360_DUCKDB_THREADS, the cores
    the warehouse may use (1 when it is not a number)."""
    try:
        return max(1, int(duckdb_settings()["threads"]))
    except ValueError:
        return 1


def process_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()
) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of `workers` spawned processes for a step's Python work; spawned, never forked:
    the step's process runs DuckDB's threads."""
    context = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=initializer, initargs=initargs
    )


def memory_bytes(text: str) -> int | None:
    """A DuckDB memory size ("4GB", "306.1 MiB", "512KiB") in bytes; None if not a size.
    Decimal units (KB, MB, GB) are powers of 1000 and binary ones (KiB, MiB) of 1024, as DuckDB
    reads them."""
    m = _SIZE.match(text or "")
    if not m or m.group(2).lower() not in _UNITS | {"": 1}:
        return None
    return int(float(m.group(1)) * _UNITS.get(m.group(2).lower(), 1))


def scratch_share() -> float:
    """The fraction of the memory budget every open scratch database gets together while the
    warehouse is open too (C360_DUCKDB_SCRATCH_SHARE, strictly between 0 and 1)."""
    raw = os.environ.get(SCRATCH_SHARE_ENV, "")
    try:
        share = float(raw) if raw else DEFAULT_SCRATCH_SHARE
    except ValueError:
        raise ValueError(
            f"{SCRATCH_SHARE_ENV}={raw!r}: expected a number between 0 and 1"
        ) from None
    if not 0 < share < 1:
        raise ValueError(f"{SCRATCH_SHARE_ENV}={raw!r}: expected a number between 0 and 1")
    return share


def memory_shares(budget: int, warehouses: int, scratches: int) -> tuple[int, int]:
    """(bytes per warehouse database, bytes per scratch database) so that `warehouses` +
    `scratches` open databases use at most `budget` together. Shares are whole MiB (rounded
    down), so the sum stays within the budget however DuckDB rounds what it reports."""
    if warehouses and scratches:
        scratch_total = budget * scratch_share()
        per_warehouse = (budget - scratch_total) / warehouses
        per_scratch = scratch_total / scratches
    else:
        per_warehouse = per_scratch = budget / max(1, warehouses + scratches)
    floor = lambda n: max(_MIB, math.floor(n / _MIB) * _MIB)  # noqa: E731
    return floor(per_warehouse), floor(per_scratch)


# The DuckDB databases this process has open, by kind: ("warehouse", resolved path) — every
# connection to one file shares one database, so one share — or ("scratch", id).
_open: dict[tuple[str, str], list[weakref.ref]] = {}
_open_lock = threading.Lock()


def _alive(ref: weakref.ref) -> duckdb.DuckDBPyConnection | None:
    con = ref()
    if con is None:
        return None
    try:
        con.cursor().close()  # raises once the connection is closed
    except duckdb.Error:
        return None
    return con


def _rebalance() -> None:
    """Divide the memory budget among the databases still open (see the module doc). The limit is
    SET through a cursor: a pending result on the caller's connection stays readable."""
    with _open_lock:
        _rebalance_locked()


def _rebalance_locked() -> None:
    limit = duckdb_settings()["memory_limit"]
    budget = memory_bytes(limit)
    live: dict[tuple[str, str], duckdb.DuckDBPyConnection] = {}
    for key, refs in list(_open.items()):
        cons = [c for r in refs if (c := _alive(r)) is not None]
        if cons:
            _open[key] = [weakref.ref(c) for c in cons]
            live[key] = cons[0]
        else:
            del _open[key]
    if budget is None or not live:
        return  # a limit DuckDB reads but we cannot (e.g. a percentage) is left to DuckDB
    warehouses = sum(1 for kind, _ in live if kind == "warehouse")
    per_warehouse, per_scratch = memory_shares(budget, warehouses, len(live) - warehouses)
    for (kind, _), con in live.items():
        share = per_warehouse if kind == "warehouse" else per_scratch
        # alone, a database gets the setting as written (no rounding to whole MiB)
        value = limit if len(live) == 1 else f"{share // 1024}KiB"
        cur = con.cursor()
        try:
            cur.execute("set memory_limit = '" + value.replace("'", "''") + "'")
        finally:
            cur.close()


def _track(kind: str, key: str, con: duckdb.DuckDBPyConnection) -> None:
    with _open_lock:
        _open.setdefault((kind, key), []).append(weakref.ref(con))
        _rebalance_locked()


def apply_settings(con: duckdb.DuckDBPyConnection, settings: dict[str, str]) -> None:
    """SET each setting once; the spill folder only when the open database uses another one.

    Connections to the same file in one process share one database, so a second `connect` while a
    first has spilled would otherwise be refused by DuckDB ("Cannot switch temporary directory").
    """
    for key, value in settings.items():
        if key == "temp_directory":
            row = con.execute("select current_setting('temp_directory')").fetchone()
            if row and row[0] and Path(row[0]).resolve() == Path(value).resolve():
                continue
        escaped = str(value).replace("'", "''")
        con.execute(f"set {key} = '{escaped}'")


def connect(path: Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse with the shared settings; creates the fixed schemas when writable."""
    db = Path(path) if path else warehouse_path()
    settings = duckdb_settings()
    Path(settings["temp_directory"]).mkdir(parents=True, exist_ok=True)
    if not read_only:
        db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db), read_only=read_only)
    try:
        apply_settings(con, settings)
        if not read_only:
            ensure_schemas(con)
        _track("warehouse", str(db.resolve()), con)
    except BaseException:
        con.close()
        raise
    return con


ENGINE_ENV = "C360_DBT_TARGET"
ENGINES = ("duckdb", "postgres", "spark")


def engine() -> str:
    """The warehouse engine of dbt and of the Python steps alike: dbt's profile target
    (C360_DBT_TARGET, default duckdb), so one setting moves both."""
    name = os.environ.get(ENGINE_ENV, "duckdb") or "duckdb"
    if name not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={name!r}: expected one of {', '.join(ENGINES)}")
    return name


def warehouse_pool() -> str | None:
    """The Dagster pool of the steps that write the warehouse: "duckdb" on DuckDB, which allows
    one writer (the instance limits the pool to one slot, dagster.yaml); none on a server engine,
    where steps write side by side."""
    return "duckdb" if engine() == "duckdb" else None


def postgres_dsn() -> str:
    """libpq connection string from the env vars dbt's postgres output reads (C360_PG_HOST,
    C360_PG_PORT, C360_PG_USER, C360_PG_PASSWORD, C360_PG_DATABASE; same defaults)."""
    from psycopg2.extensions import make_dsn

    env = os.environ.get
    return make_dsn(
        host=env("C360_PG_HOST", "127.0.0.1"),
        port=env("C360_PG_PORT", "5432"),
        user=env("C360_PG_USER", "c360"),
        password=env("C360_PG_PASSWORD", "") or None,
        dbname=env("C360_PG_DATABASE", "c360"),
    )


@contextmanager
def postgres_warehouse(read_only: bool = False) -> Iterator[Connection]:
    """A session on the Postgres warehouse (postgres_dsn), closed on exit: with the warehouse's
    schemas, or read-only (Postgres refuses every write of the session)."""
    from orchestration.engine.postgres import PostgresConnection

    # batch steps over whole tables, as dbt's models (macros/planner_settings.sql): no
    # nested-loop joins, which the planner picks on misestimated rows
    settings = ["set enable_nestloop = off"]
    if read_only:
        settings.append("set default_transaction_read_only = on")
    with _session(PostgresConnection.connect(postgres_dsn()), read_only, settings) as con:
        yield con


@contextmanager
def spark_session(read_only: bool = False) -> Iterator[Connection]:
    """A session on the Spark Thrift Server dbt's spark output reaches (C360_SPARK_HOST,
    C360_SPARK_PORT, C360_SPARK_USER; same defaults), closed on exit, with the warehouse's
    schemas. Spark has no read-only session: `read_only` callers write nothing by their own
    contract."""
    from orchestration.engine.spark import SparkConnection

    env = os.environ.get
    host, port = env("C360_SPARK_HOST", "127.0.0.1"), int(env("C360_SPARK_PORT", "10000"))
    with _session(
        SparkConnection.connect(host, port, env("C360_SPARK_USER", "c360")), read_only
    ) as con:
        yield con


@contextmanager
def _session(
    con: Connection, read_only: bool, settings: Sequence[str] = ()
) -> Iterator[Connection]:
    """`con` after its session `settings`, with the warehouse's schemas unless `read_only`;
    closed on exit."""
    try:
        for statement in settings:
            con.execute(statement)
        if not read_only:
            ensure_schemas(con)
        yield con
    finally:
        con.close()


@contextmanager
def server_warehouse(read_only: bool = False) -> Iterator[Connection]:
    """A session on the warehouse's server engine (engine() is postgres or spark)."""
    opener = spark_session if engine() == "spark" else postgres_warehouse
    with opener(read_only=read_only) as con:
        yield con


@contextmanager
def open_warehouse(read_only: bool = False) -> Iterator[Connection]:
    """A session on the warehouse engine (engine()): the DuckDB file of C360_WAREHOUSE, or
    a server's (server_warehouse); closed on exit."""
    if engine() != "duckdb":
        with server_warehouse(read_only=read_only) as con:
            yield con
        return
    with warehouse(read_only=read_only) as con:
        yield con


def ensure_schemas(con: Connection) -> None:
    """The warehouse's schemas exist (on any engine: the Python steps and dbt write into them)."""
    if hasattr(con, "ensure_schemas"):
        con.ensure_schemas(SCHEMAS)
        return
    for schema in SCHEMAS:
        con.execute(f"create schema if not exists {schema}")


def scratch() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB with the shared settings (memory limit, spill folder, threads).

    Every DuckDB the pipeline opens goes through here or `connect`, so none runs without
    C360_DUCKDB_MEMORY_LIMIT and none spills outside C360_DUCKDB_TEMP_DIR; while a warehouse is
    open in this process the scratch gets C360_DUCKDB_SCRATCH_SHARE of the limit and the
    warehouse is lowered to the rest (module doc).
    """
    settings = duckdb_settings()
    Path(settings["temp_directory"]).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        apply_settings(con, settings)
        _track("scratch", str(id(con)), con)
    except BaseException:
        con.close()
        raise
    return con


def is_out_of_memory(message: str) -> bool:
    """True when a DuckDB error (or dbt's report of one) says the memory limit was hit."""
    text = message.lower()
    return any(marker in text for marker in _OUT_OF_MEMORY)


def out_of_memory_message(step: str, detail: str = "") -> str:
    """One line naming memory, the limit in force and the env var that raises it."""
    settings = duckdb_settings()
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    first = next((line for line in lines if is_out_of_memory(line)), lines[0] if lines else "")
    return (
        f"{step} ran out of memory: DuckDB needed more than its memory limit of "
        f"{settings['memory_limit']} ({MEMORY_ENV}) even after spilling to "
        f"{settings['temp_directory']}. "
        f"Raise {MEMORY_ENV} (e.g. 4GB), or lower C360_DUCKDB_THREADS, and rerun."
        + (f" DuckDB said: {first}" if first else "")
    )


class WarehouseOutOfMemory(RuntimeError):
    """A warehouse query hit C360_DUCKDB_MEMORY_LIMIT; the message says so and how to fix it."""


@contextmanager
def warehouse(
    path: Path | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context-managed connection that is always closed (DuckDB allows one writer process).

    A DuckDB out-of-memory error inside the block is raised again as WarehouseOutOfMemory, whose
    message names memory and C360_DUCKDB_MEMORY_LIMIT.
    """
    con = connect(path, read_only=read_only)
    try:
        yield con
    except duckdb.OutOfMemoryException as exc:
        raise WarehouseOutOfMemory(out_of_memory_message("A warehouse query", str(exc))) from exc
    finally:
        con.close()
        _rebalance()


def create_table(con: Connection, table: str, columns: str) -> None:
    """Create `table` ("schema.name") and its schema when missing; `columns` is the column list
    as SQL. An existing table is left as it is (add new columns with `alter table`)."""
    con.execute(f"create schema if not exists {table.split('.')[0]}")
    con.execute(f"create table if not exists {table} ({columns})")
