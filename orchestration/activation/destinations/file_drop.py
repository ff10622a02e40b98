"""File-drop destination: the audience to send written as one CSV or Parquet file per sync/as_of.

The file is written to a temporary name and renamed, so a reader never sees half a file; every
row in a completed file is `ok`. A failed write marks the batch `retryable` (nothing half-sent).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from orchestration.contracts.rules_sql import quote_ident, quote_literal


@dataclass(frozen=True)
class FileDropResult:
    uri: str
    rows: int
    ok: bool
    error: str | None = None


def write_audience(
    con: duckdb.DuckDBPyConnection,
    select_sql: str,
    field_names: list[str],
    base_dir: Path,
    sync_name: str,
    as_of: dt.date,
    file_format: str = "csv",
) -> FileDropResult:
    folder = base_dir / sync_name
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{sync_name}__{as_of.isoformat()}.{file_format}"
    tmp = final.with_suffix(final.suffix + ".partial")
    cols = ", ".join(f"{quote_ident('f_' + n)} as {quote_ident(n)}" for n in field_names)
    fmt = "(format csv, header true)" if file_format == "csv" else "(format parquet)"
    try:
        con.execute(
            f"copy (select {cols} from ({select_sql}) order by 1) to {quote_literal(str(tmp))} {fmt}"
        )
        rows = con.execute(f"select count(*) from ({select_sql})").fetchone()[0]
        tmp.replace(final)
    except (duckdb.Error, OSError) as exc:
        tmp.unlink(missing_ok=True)
        return FileDropResult(str(final), 0, False, str(exc).splitlines()[0])
    return FileDropResult(str(final), rows, True)
