"""File mode of the extractor: find landing files for a contract and read them as text rows.

Layout: `<landing>/<source>/<entity>/[dt=YYYY-MM-DD/]*.{csv,jsonl,parquet}`. Every value is read
as text so that type rules are checked by the contract (quarantine), not by a reader that fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

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


@dataclass(frozen=True)
class ReadOutcome:
    rows: int
    missing_columns: dict[str, list[str]]  # file → contract columns absent from it
    extra_columns: dict[str, list[str]]  # file → columns not in the contract (ignored)


def read_into(
    con: duckdb.DuckDBPyConnection, table: str, files: list[LandingFile], contract: Contract
) -> ReadOutcome:
    """Append every file's rows (as text) to `table`, which must already exist."""
    missing: dict[str, list[str]] = {}
    extra: dict[str, list[str]] = {}
    total = 0
    for f in files:
        if f.size == 0:
            raise LandingFileError(f"{f.path}: empty file (not even a header); nothing was loaded")
        try:
            present = _columns_in_file(con, f)
            before = con.execute(f"select count(*) from {table}").fetchone()[0]
            con.execute(f"insert into {table} {_select_text(f, set(present), contract)}")
            after = con.execute(f"select count(*) from {table}").fetchone()[0]
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise LandingFileError(
                f"{f.path}: cannot be read as {f.path.suffix[1:]}: {first}"
            ) from exc
        total += after - before
        gone = [c for c in contract.column_names if c not in present]
        if gone:
            missing[str(f.path)] = gone
        more = [c for c in present if c not in contract.column_names]
        if more:
            extra[str(f.path)] = more
    return ReadOutcome(total, missing, extra)
