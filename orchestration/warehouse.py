"""The embedded DuckDB warehouse: one place for its settings, shared by dbt, Python steps and the CLI.

dbt reads the same env vars in dbt_project/profiles.yml, so threads, memory and spill location are
configured once (C360_DUCKDB_THREADS, C360_DUCKDB_MEMORY_LIMIT, C360_DUCKDB_TEMP_DIR).

Each is applied once per database: dbt passes them as `config_options` when it opens the file, and
`connect` sets only what differs from the open database. DuckDB refuses `SET temp_directory` (even
to the same path) once a query has spilled there, so setting it again is what broke spilling.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

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

# What DuckDB says when a query needs more memory than the limit and spilling cannot help.
_OUT_OF_MEMORY = ("out of memory error", "could not allocate", "failed to allocate")


def duckdb_settings() -> dict[str, str]:
    """Threads, memory limit and spill directory; the same values dbt's profile reads."""
    temp_dir = os.environ.get("C360_DUCKDB_TEMP_DIR", str(c360_home() / "tmp"))
    return {
        "threads": os.environ.get("C360_DUCKDB_THREADS", "2"),
        "memory_limit": os.environ.get("C360_DUCKDB_MEMORY_LIMIT", "4GB"),
        "temp_directory": str(Path(temp_dir).resolve()),
        "TimeZone": "UTC",
    }


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
            for schema in SCHEMAS:
                con.execute(f"create schema if not exists {schema}")
    except BaseException:
        con.close()
        raise
    return con


def scratch() -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB with the shared settings (memory limit, spill folder, threads).

    Every DuckDB the pipeline opens goes through here or `connect`, so none runs without
    C360_DUCKDB_MEMORY_LIMIT and none spills outside C360_DUCKDB_TEMP_DIR.
    """
    settings = duckdb_settings()
    Path(settings["temp_directory"]).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        apply_settings(con, settings)
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


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])
