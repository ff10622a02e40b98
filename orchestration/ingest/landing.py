"""File mode of the extractor: find landing files for a contract and read them as text rows.

Layout: `<landing>/<source>/<entity>/[dt=YYYY-MM-DD/]*.{csv,jsonl,parquet}`. Every value is read
as text so that type rules are checked by the contract (quarantine), not by a reader that fails.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from orchestration.contracts.masking import mask_value
from orchestration.contracts.model import Contract
from orchestration.contracts.rules_sql import quote_ident, quote_literal

SUFFIXES = (".csv", ".jsonl", ".parquet")
# Files the live extractor writes (orchestration/extract/live.py): replaceable until published.
LIVE_PREFIX = "live-"
_DT = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


class LandingFileError(ValueError):
    """A landing file cannot be read; the message names the file (and line when known)."""


@dataclass(frozen=True)
class LandingFile:
    path: Path
    sha256: str
    size: int


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def discover(landing_dir: Path, contract: Contract, as_of: dt.date) -> list[LandingFile]:
    """Files for this contract visible at `as_of` (dt= partitions after as_of are not yet due)."""
    root = landing_dir / contract.source / contract.entity
    if not root.exists():
        return []
    found: list[LandingFile] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in SUFFIXES or path.name.startswith("."):
            continue
        part = next((m.group(1) for p in path.relative_to(root).parts if (m := _DT.match(p))), None)
        if part is not None and dt.date.fromisoformat(part) > as_of:
            continue
        found.append(LandingFile(path, _sha256(path), path.stat().st_size))
    return found


def _columns_in_file(con: duckdb.DuckDBPyConnection, f: LandingFile) -> list[str]:
    p = quote_literal(str(f.path))
    if f.path.suffix == ".csv":
        rows = con.execute(f"describe select * from read_csv({p}, all_varchar=true, header=true)")
        return [r[0] for r in rows.fetchall()]
    if f.path.suffix == ".parquet":
        return [r[0] for r in con.execute(f"describe select * from read_parquet({p})").fetchall()]
    rows = con.execute(
        f"select distinct unnest(json_keys(json)) from read_ndjson_objects({p})"
    ).fetchall()
    return [r[0] for r in rows]


def _select_text(f: LandingFile, present: set[str], contract: Contract) -> str:
    """SELECT producing the contract's columns as text (missing ones null) plus provenance."""
    p = quote_literal(str(f.path))
    if f.path.suffix == ".jsonl":
        cols = [
            f"json ->> {quote_literal(c)} as {quote_ident(c)}"
            if c in present
            else f"cast(null as varchar) as {quote_ident(c)}"
            for c in contract.column_names
        ]
        src = f"read_ndjson_objects({p})"
    else:
        cols = [
            f"cast({quote_ident(c)} as varchar) as {quote_ident(c)}"
            if c in present
            else f"cast(null as varchar) as {quote_ident(c)}"
            for c in contract.column_names
        ]
        src = (
            f"read_csv({p}, all_varchar=true, header=true)"
            if f.path.suffix == ".csv"
            else f"read_parquet({p})"
        )
    return (
        f"select {', '.join(cols)}, {p} as _source_file, "
        f"cast(row_number() over () as bigint) as _source_row from {src}"
    )


# Physical types a landing file may carry for a contract column; anything else is a *retyped*
# column (docs/data-quality.md, "Batch gates"). JSON: json_type() of the value; Parquet: the
# DuckDB type of the column. CSV carries no types: there a column is retyped by its values.
_SIGNED = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
_INTS = (*_SIGNED, *("U" + t for t in _SIGNED))
_TIMESTAMPS = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS")
PARQUET_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("VARCHAR",),
    "integer": ("VARCHAR", *_INTS),
    "number": ("VARCHAR", *_INTS, "DECIMAL", "FLOAT", "DOUBLE"),
    "date": ("VARCHAR", "DATE"),
    "timestamp": ("VARCHAR", *_TIMESTAMPS, "TIMESTAMP_NS"),
    "boolean": ("VARCHAR", "BOOLEAN"),
}
JSON_TYPES: dict[str, tuple[str, ...]] = {
    "string": ("VARCHAR", "NULL"),
    "integer": ("VARCHAR", "BIGINT", "UBIGINT", "NULL"),
    "number": ("VARCHAR", "BIGINT", "UBIGINT", "DOUBLE", "NULL"),
    "date": ("VARCHAR", "NULL"),
    "timestamp": ("VARCHAR", "NULL"),
    "boolean": ("VARCHAR", "BOOLEAN", "NULL"),
}
SAMPLE_ROWS = 3


def parquet_type_accepted(logical_type: str, physical: str) -> bool:
    base = physical.split("(", 1)[0].strip()
    return base in PARQUET_TYPES[logical_type] or physical in PARQUET_TYPES[logical_type]


def count_records(path: Path) -> int:
    """Records in a landing file, counted without DuckDB (the loader): the independent side of
    row accounting. CSV: records after the first, by Python's csv module (quoted line breaks stay
    inside a record; empty lines are not records, a line of only commas is); JSON lines: non-blank
    lines; Parquet: the row count in the file's footer. A line above the header that DuckDB's
    sniffer skips (an export banner) counts here as the header, so the loader falls one short and
    the gate names the file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            records = sum(1 for rec in csv.reader(fh) if rec)
        return max(records - 1, 0)
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


def mask_file_row(contract: Contract, row: dict[str, Any]) -> dict[str, Any]:
    """Mask a row read straight from a file: PII contract columns AND every column the contract
    does not know (a renamed `email` is still an email), so no PII reaches metadata or logs."""
    public = {f.name for f in contract.fields if not f.is_pii}
    return {
        k: (("" if v is None else str(v)) if k in public else mask_value(v)) for k, v in row.items()
    }


@dataclass
class ReadOutcome:
    rows: int
    missing_columns: dict[str, list[str]]  # file → contract columns absent from it
    extra_columns: dict[str, list[str]]  # file → columns not in the contract (ignored)
    rows_by_file: dict[str, int] = field(default_factory=dict)  # the loader's count per file
    # file → column → {"types": physical types found, "rows": n, "sample_rows": [_source_row]}
    retyped: dict[str, dict[str, dict]] = field(default_factory=dict)
    # file → a few masked rows as they are in the file (schema drift evidence)
    file_samples: dict[str, list[dict]] = field(default_factory=dict)


def _retyped_in_file(
    con: duckdb.DuckDBPyConnection, f: LandingFile, present: list[str], contract: Contract
) -> dict[str, dict]:
    """Contract columns whose physical type in this file is not one their logical type accepts."""
    p = quote_literal(str(f.path))
    found: dict[str, dict] = {}
    if f.path.suffix == ".parquet":
        types = dict(
            (r[0], r[1])
            for r in con.execute(f"describe select * from read_parquet({p})").fetchall()
        )
        for col in contract.column_names:
            if col not in types or parquet_type_accepted(
                contract.field(col).logical_type, types[col]
            ):
                continue
            q = quote_ident(col)
            n, rows = con.execute(
                f"select count({q}), list(_r order by _r)[1:{SAMPLE_ROWS}] from (select {q}, "
                f"row_number() over () as _r from read_parquet({p})) where {q} is not null"
            ).fetchone()
            if n:
                found[col] = {"types": [types[col]], "rows": n, "sample_rows": rows}
    elif f.path.suffix == ".jsonl":
        for col in contract.column_names:
            if col not in present:
                continue
            ok = ", ".join(quote_literal(t) for t in JSON_TYPES[contract.field(col).logical_type])
            jt = f"json_type(json -> {quote_literal(col)})"
            n, kinds, rows = con.execute(
                f"select count(*), list(distinct _t), list(_r order by _r)[1:{SAMPLE_ROWS}] "
                f"from (select {jt} as _t, row_number() over () as _r "
                f"from read_ndjson_objects({p})) where _t not in ({ok})"
            ).fetchone()
            if n:
                found[col] = {"types": sorted(kinds), "rows": n, "sample_rows": rows}
    return found


def _file_sample(con: duckdb.DuckDBPyConnection, f: LandingFile, contract: Contract) -> list[dict]:
    p = quote_literal(str(f.path))
    if f.path.suffix == ".jsonl":
        rows = []
        with f.path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    rows.append(json.loads(line))
                if len(rows) == SAMPLE_ROWS:
                    break
    else:
        src = (
            f"read_csv({p}, all_varchar=true, header=true)"
            if f.path.suffix == ".csv"
            else f"read_parquet({p})"
        )
        cur = con.execute(f"select * from {src} limit {SAMPLE_ROWS}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return [mask_file_row(contract, r) for r in rows]


def read_into(
    con: duckdb.DuckDBPyConnection, table: str, files: list[LandingFile], contract: Contract
) -> ReadOutcome:
    """Append every file's rows (as text) to `table`, which must already exist."""
    out = ReadOutcome(0, {}, {})
    for f in files:
        if f.size == 0:
            raise LandingFileError(f"{f.path}: empty file (not even a header); nothing was loaded")
        try:
            present = _columns_in_file(con, f)
            before = con.execute(f"select count(*) from {table}").fetchone()[0]
            con.execute(f"insert into {table} {_select_text(f, set(present), contract)}")
            after = con.execute(f"select count(*) from {table}").fetchone()[0]
            retyped = _retyped_in_file(con, f, present, contract)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise LandingFileError(
                f"{f.path}: cannot be read as {f.path.suffix[1:]}: {first}"
            ) from exc
        key = str(f.path)
        out.rows += after - before
        out.rows_by_file[key] = after - before
        if retyped:
            out.retyped[key] = retyped
        gone = [c for c in contract.column_names if c not in present]
        if gone:
            out.missing_columns[key] = gone
        more = [c for c in present if c not in contract.column_names]
        if more:
            out.extra_columns[key] = more
        if gone or more:
            out.file_samples[key] = _file_sample(con, f, contract)
    return out
