"""The embedded DuckDB warehouse: one place for its settings, shared by dbt, Python steps and the CLI.

dbt reads the same env vars in dbt_project/profiles.yml, so threads, memory and spill location are
configured once (C360_DUCKDB_THREADS, C360_DUCKDB_MEMORY_LIMIT, C360_DUCKDB_TEMP_DIR).
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


def duckdb_settings() -> dict[str, str]:
    """Threads, memory limit and spill directory; the same values dbt's profile reads."""
    temp_dir = os.environ.get("C360_DUCKDB_TEMP_DIR", str(c360_home() / "tmp"))
    return {
        "threads": os.environ.get("C360_DUCKDB_THREADS", "2"),
        "memory_limit": os.environ.get("C360_DUCKDB_MEMORY_LIMIT", "4GB"),
        "temp_directory": temp_dir,
        "TimeZone": "UTC",
    }


def connect(path: Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse with the shared settings; creates the fixed schemas when writable."""
    db = Path(path) if path else warehouse_path()
    settings = duckdb_settings()
    Path(settings["temp_directory"]).mkdir(parents=True, exist_ok=True)
    if not read_only:
        db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db), read_only=read_only)
    for key, value in settings.items():
        con.execute(f"set {key} = '{value}'")
    if not read_only:
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
    return con


@contextmanager
def warehouse(
    path: Path | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context-managed connection that is always closed (DuckDB allows one writer process)."""
    con = connect(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])
