"""File mode of the extractor: find landing files for a contract and read them as text rows.

Layout: `<landing>/<source>/<entity>/[dt=YYYY-MM-DD/]*.{csv,jsonl,parquet}`. Every value is read
as text so that type rules are checked by the contract (quarantine), not by a reader that fails.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from orchestration.contracts.masking import mask_row
from orchestration.contracts.model import Contract
from orchestration.contracts.rules_sql import quote_ident, quote_literal
from orchestration.ingest.file_hash import RACY_NS, file_sha256, stat_signature

SUFFIXES = (".csv", ".jsonl", ".parquet")
# Files the live extractor writes (orchestration/extract/live.py): replaceable until published.
LIVE_PREFIX = "live-"
_DT = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
# The longest CSV line (a record, quoted line breaks included) read, in bytes, for DuckDB's
# `max_line_size` and the independent count's csv.field_size_limit (Python's default, 128 KiB,
# crashed the count on a long free-text value). A longer record fails the file naming its line.
MAX_CSV_LINE_BYTES = 16 << 20
UTF8_BOM = b"\xef\xbb\xbf"


class LandingFileError(ValueError):
    """A landing file cannot be read; the message names the file (and line when known)."""


# Quarantine rule id of a JSON line that is not valid JSON (truncated or malformed): the row is
# quarantined with a reason naming file:line, the rest of the file loads (docs/sources.md).
INVALID_JSON_RULE = "_file.invalid_json"
EXPECTED_ENCODING = "UTF-8"
# Delimiters a CSV export is commonly (mis)configured with; used only to explain a bad header.
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}


@dataclass(frozen=True)
class LandingFile:
    """One landing file as discover() found it (grain: one file version), with what the single
    read of its bytes (scan_file) learnt: its SHA-256 (the cursor key), its records (JSON lines:
    non-blank lines, as count_records counts; None for CSV and Parquet, counted by count_records)
    and, for text files, why it is not UTF-8 (None when it is)."""

    path: Path
    sha256: str
    size: int
    records: int | None = None
    encoding_error: str | None = None
    # (size, mtime_ns, ctime_ns, inode, device) before and after the read; None when the file
    # was written during or just before it (see scan_file): publish then hashes it again.
    signature: tuple[int, ...] | None = None
    # The file starts with a UTF-8 byte order mark (stripped when read; never part of a record).
    bom: bool = False
    # False when discover_landing took the file as published from its stat signature alone
    scanned: bool = True
    # The name DuckDB reads the file by (read_into: a link with a plain name in a private folder,
    # see _literal_names). DuckDB expands `[ ] * ?` in any path it is given as a glob, so a file
    # `part[1].csv` given by its own name read `part1.csv` instead.
    read_as: Path | None = None


_SCAN_CHUNK = 1 << 22


def _line_ends(part: bytes) -> np.ndarray:
    """Offsets of the newlines in `part` (numpy: ~10x bytes.count at 1.7 GB)."""
    return np.flatnonzero(np.frombuffer(part, dtype=np.uint8) == 10)


def _nonblank_lines(part: bytes, ends: np.ndarray) -> int:
    """Non-blank lines in `part`, which starts at a line start and holds whole lines (the file's
    last part may end without a newline; `ends`: _line_ends(part)): what
    `sum(1 for line in fh if line.strip())` counts.

    Vectorised: a line can only be blank if its first byte is one bytes.strip() removes (space,
    9-13; an empty line's first byte is its newline), so only such lines are tested one by one.
    Line by line in Python the count of 6.8M events cost ~2.5 s; this a few tenths."""
    if not part:
        return 0
    starts = np.concatenate(([0], ends + 1))
    if starts[-1] == len(part):  # the part ends with a newline: no unterminated last line
        starts = starts[:-1]
    first = np.frombuffer(part, dtype=np.uint8)[starts]
    suspects = np.flatnonzero((first == 32) | ((first >= 9) & (first <= 13)))
    lines = len(starts)
    for i in suspects.tolist():
        end = int(ends[i]) if i < len(ends) else len(part)
        if not part[int(starts[i]) : end].strip():
            lines -= 1
    return lines


def _utf8_error(path: Path, part: bytes, line: int, offset: int) -> str | None:
    """Why `part` (starting at `line`, byte `offset` of the file) is not UTF-8, or None."""
    if part.isascii():
        return None
    try:
        part.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = part[exc.start]
        at_line = line + part.count(b"\n", 0, exc.start)
        return (
            f"{path}: line {at_line} (byte offset {offset + exc.start}): not valid "
            f"{EXPECTED_ENCODING} (byte 0x{bad:02X}); landing files must be "
            f"{EXPECTED_ENCODING}. Re-export the file as {EXPECTED_ENCODING} (a cp1252 or "
            "latin-1 export is the usual cause); nothing from this batch was loaded"
        )
    return None


def scan_file(path: Path) -> LandingFile:
    """Read a landing file's bytes once (grain: one file): its SHA-256; for CSV and JSON lines the
    first place it is not UTF-8 (check_encoding's message); for JSON lines its records (non-blank
    lines, count_records' definition — still Python, never the loader).

    One pass instead of four (hash, line count, UTF-8 check, and the hash again at publish): at
    6.8M events (1.7 GB) each pass cost ~2 s. The stat signature taken around the read lets
    publish see that the file was not written since, without hashing it again."""
    before = path.stat()
    text, jsonl = path.suffix in (".csv", ".jsonl"), path.suffix == ".jsonl"
    h = hashlib.sha256()
    error: str | None = None
    records, offset, line, carry = 0, 0, 1, b""
    with path.open("rb") as fh:
        head = fh.read(3)
        fh.seek(0)
        bom = text and head == UTF8_BOM
        head = head[:2]
        if text and head in (b"\xff\xfe", b"\xfe\xff"):
            error = (
                f"{path}: line 1 (byte 0): the file is UTF-16 (byte order mark {head.hex()}); "
                f"landing files must be {EXPECTED_ENCODING}. Re-export it as "
                f"{EXPECTED_ENCODING}; nothing from this batch was loaded"
            )
        while True:
            chunk = fh.read(_SCAN_CHUNK)
            h.update(chunk)
            if not text:
                if not chunk:
                    break
                continue
            data = carry + chunk
            # Cut at the last newline: 0x0A never occurs inside a multi-byte UTF-8 sequence.
            cut = data.rfind(b"\n") + 1 if chunk else len(data)
            part, carry = data[:cut], data[cut:]
            if error is None:
                error = _utf8_error(path, part, line, offset)
            ends = _line_ends(part)
            if jsonl:
                records += _nonblank_lines(part, ends)
            offset += len(part)
            line += len(ends)
            if not chunk:
                break
    after = path.stat()
    racy = stat_signature(before) != stat_signature(after) or (
        time.time_ns() - after.st_mtime_ns < RACY_NS
    )
    return LandingFile(
        path,
        h.hexdigest(),
        after.st_size,
        records if jsonl else None,
        error,
        None if racy else stat_signature(after),
        bom,
    )


def unchanged_since_scan(f: LandingFile) -> bool:
    """The file still holds the bytes scan_file read: its stat signature is the one taken then
    (an in-place write changes ctime, a replacement the inode), or, when that signature proves
    nothing (racy or changed), its SHA-256 is the one read then. False if it is gone."""
    try:
        st = f.path.stat()
    except FileNotFoundError:
        return False
    if f.signature is not None and stat_signature(st) == f.signature:
        return True
    return file_sha256(f.path) == f.sha256


@dataclass
class Discovery:
    """What discover_landing() found for one entity: the files to consider, and what it refused
    to read with why (path of a file or folder -> reason), so a refusal is reported, not lost."""

    files: list[LandingFile] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _partition(name: str) -> tuple[bool, dt.date | None]:
    """(is a `dt=` folder, its date or None when the name is not a valid dt=YYYY-MM-DD)."""
    if not name.startswith("dt="):
        return False, None
    m = _DT.match(name)
    try:
        return True, dt.date.fromisoformat(m.group(1)) if m else None
    except ValueError:  # dt=2026-02-30: the shape of a date, not a date
        return True, None


def discover_landing(
    landing_dir: Path,
    contract: Contract,
    as_of: dt.date,
    known: Mapping[str, tuple[tuple[int, ...], str]] | None = None,
) -> Discovery:
    """Files for this contract visible at `as_of` (dt= partitions after as_of are not yet due),
    in path order, and what was refused, each by name: a symbolic link (to a file or a folder)
    whose target lies outside the landing folder, a broken link, a `dt=` folder whose name is not
    a valid date, a folder that cannot be listed (its files are not read; the others go on).

    `known`: path -> (stat signature, SHA-256) of files already published, as scan_file found
    them. A file whose stat signature is still that one holds those bytes (an in-place write
    changes its ctime, a replacement its inode; scan_file gives no signature to a file written
    around its read, git's racy-clean rule), so it is not read again: the night's cost no longer
    grows with every file ever landed. Its LandingFile carries no record count or encoding
    verdict, which only a file still to publish needs.

    Names are taken literally: folders are listed (os.scandir), never matched as patterns.
    With `C360_LANDING_URL=s3://bucket/prefix` set, the entity's objects are first mirrored into
    `landing_dir` (orchestration/ingest/s3_landing.py) and then found here like local files."""
    from orchestration.ingest.s3_landing import landing_url, sync_entity

    url = landing_url()
    if url:
        sync_entity(landing_dir, contract.source, contract.entity, SUFFIXES, url)
    out = Discovery()
    base = landing_dir.resolve()
    root = landing_dir / contract.source / contract.entity
    if not root.exists():
        return out
    if not _within(root.resolve(), base):
        out.refused[str(root)] = (
            f"symbolic link to {root.resolve()}, outside the landing folder {base}: not read"
        )
        return out
    seen: set[Path] = set()

    def walk(folder: Path, day: dt.date | None) -> None:
        real = folder.resolve()
        if real in seen:  # a link back to a folder already listed: read once
            return
        seen.add(real)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:  # e.g. no permission: named, the other folders go on
            out.refused[str(folder)] = f"folder cannot be listed ({exc.strerror}): not read"
            return
        for e in entries:
            if e.name.startswith("."):
                continue
            path = Path(e.path)
            if e.is_symlink():
                target = path.resolve()
                if not target.exists():
                    out.refused[str(path)] = f"broken symbolic link (to {target}): not read"
                    continue
                if not _within(target, base):
                    out.refused[str(path)] = (
                        f"symbolic link to {target}, outside the landing folder {base}: not read"
                    )
                    continue
            if path.is_dir():
                is_dt, part = _partition(e.name)
                if is_dt and part is None:
                    out.refused[str(path)] = (
                        f"partition folder {e.name!r} is not a valid dt=YYYY-MM-DD date: "
                        "its files were not read (rename it to the delivery date)"
                    )
                    continue
                if part is not None and day is None:
                    if part > as_of:
                        continue  # not yet due
                    walk(path, part)
                else:
                    walk(path, day)
            elif path.is_file() and path.suffix in SUFFIXES:
                out.files.append(_known(path, known) or scan_file(path))

    walk(root, None)
    return out


def _known(
    path: Path, known: Mapping[str, tuple[tuple[int, ...], str]] | None
) -> LandingFile | None:
    """The LandingFile of a published file whose stat signature is the recorded one, else None."""
    entry = known.get(str(path)) if known else None
    if entry is None:
        return None
    signature, sha256 = entry
    try:
        if stat_signature(path.stat()) != signature:
            return None
    except OSError:
        return None
    return LandingFile(path, sha256, signature[0], signature=signature, scanned=False)


def discover(landing_dir: Path, contract: Contract, as_of: dt.date) -> list[LandingFile]:
    """The files of discover_landing() (what it refused is in its Discovery.refused)."""
    return discover_landing(landing_dir, contract, as_of).files


# DuckDB's readers (read_csv, read_ndjson_objects, read_text, read_parquet) expand `[ ] * ?` in
# any path as a glob, a list of one path included: `part[1].csv` read `part1.csv`. Each file is
# read through a link with a plain name (`0.csv`, `1.jsonl`, ...) in a private folder, made for
# the one read_into call; where links cannot be made, the glob characters are escaped instead.
_GLOB_ESCAPES = str.maketrans({"[": "[[]", "]": "[]]", "*": "[*]", "?": "[?]"})


def glob_escaped(path: Path) -> str:
    """`path` as a DuckDB glob that matches only itself (each of `[ ] * ?` in a class)."""
    return str(path).translate(_GLOB_ESCAPES)


@contextlib.contextmanager
def _literal_names(files: list[LandingFile]) -> Iterator[list[LandingFile]]:
    """The files with `read_as` set to a link, of a name DuckDB takes literally, to each file's
    real path (checked to lie in the landing folder by discover_landing)."""
    with tempfile.TemporaryDirectory(prefix="c360-read-") as folder:
        out = []
        for i, f in enumerate(files):
            link = Path(folder) / f"{i}{f.path.suffix}"
            try:
                link.symlink_to(f.path.resolve())
            except OSError:  # no symbolic links here (Windows without the privilege)
                link = None
            out.append(replace(f, read_as=link))
        yield out


def _duck(f: LandingFile) -> str:
    """The SQL literal DuckDB reads `f` by: its plain-named link, else its escaped name; never
    the file's own name (see _literal_names)."""
    return quote_literal(str(f.read_as) if f.read_as is not None else glob_escaped(f.path))


# JSON lines are read through a relation of (json, _err), one row per record in file order:
# `_err` null or why the line is not JSON. Normally that is read_ndjson_objects; a file with a
# malformed line is re-read line by line (_JSONL_LINES) so its good lines load and each bad one is
# quarantined naming file:line. The record number (`_rec`: non-blank lines, 1-based, what
# read_ndjson_objects numbers) is the record's position in the parsed table (see _parse_jsonl).
_JSONL_LINES = "_c360_jsonl_lines"


def _jsonl_fast(f: LandingFile) -> str:
    p = _duck(f)
    return f"(select json, cast(null as varchar) as _err from read_ndjson_objects({p}))"


def _jsonl_by_line(con: duckdb.DuckDBPyConnection, f: LandingFile) -> str:
    """Materialise the file's non-blank lines, in line order, with their validity. Blank means
    only the whitespace bytes Python's bytes.strip() removes, as count_records counts. A UTF-8
    byte order mark opening the file is dropped (it is not part of the first record)."""
    p, name = _duck(f), quote_literal(str(f.path))
    ws = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
    content = "content[2:]" if f.bom else "content"
    con.execute(
        f"create or replace temp table {_JSONL_LINES} as "
        f"with s as (select string_split({content}, chr(10)) as ls from read_text("
        f"{p})), l as (select unnest(ls) as line, generate_subscripts(ls, 1) as _line from s) "
        "select case when json_valid(line) then json(line) end as json, "
        f"case when not json_valid(line) then {name} || ':' || _line || "
        "': not valid JSON (a truncated or malformed line)' end as _err "
        f"from l where trim(line, {ws}) <> '' order by _line"
    )
    return _JSONL_LINES


# A JSON-lines file is parsed once into this temp table: per record the contract columns' values
# as text (`_v`) and JSON types (`_t`; SQL null where the key is absent), in contract column
# order, and the record's keys that are not contract columns (`_extra`, nearly always empty).
# The columns present, the staged text and the retyped check all read it, so each record is
# parsed once instead of once per question. They read it through the view _JSONL_PARSED, which
# adds `_rec`.
_JSONL_PARSED = "_c360_jsonl_parsed"
_JSONL_PARSED_TABLE = "_c360_jsonl_parsed_rows"


def _parse_jsonl(con: duckdb.DuckDBPyConnection, src: str, contract: Contract) -> str:
    """Parse the records of `src` (json, _err; file order) once into _JSONL_PARSED_TABLE and
    return the view _JSONL_PARSED over it (grain: one record), which adds the record number.

    The record number is the row's position (rowid + 1): the table is written in `src`'s order
    (insertion order is preserved, DuckDB's default). A `row_number() over ()` here, as before,
    ran the whole parse after an unpartitioned window, on one thread: ~2x the time at 6.8M events."""
    paths = "[" + ", ".join(quote_literal(c) for c in contract.column_names) + "]"
    con.execute(
        f"create or replace temp table {_JSONL_PARSED_TABLE} as select "
        f"json_extract_string(json, {paths}) as _v, json_type(json, {paths}) as _t, "
        f"list_filter(json_keys(json), lambda k: not list_contains({paths}, k)) as _extra, "
        f"_err from {src}"
    )
    con.execute(
        f"create or replace temp view {_JSONL_PARSED} as select _v, _t, _extra, "
        f"cast(rowid + 1 as bigint) as _rec, _err from {_JSONL_PARSED_TABLE}"
    )
    return _JSONL_PARSED


# hive_partitioning off: DuckDB would otherwise add the folder's `dt=` as a column `dt` to every
# CSV and Parquet file, reported as an extra column (schema drift) that no file carries.
def _csv_src(p: str) -> str:
    return (
        f"read_csv({p}, all_varchar=true, header=true, hive_partitioning=false, "
        f"max_line_size={MAX_CSV_LINE_BYTES})"
    )


def _parquet_src(p: str) -> str:
    return f"read_parquet({p}, hive_partitioning=false)"


def _columns_in_file(
    con: duckdb.DuckDBPyConnection, f: LandingFile, src: str, contract: Contract
) -> list[str]:
    """The columns a file holds (grain: one file): CSV header, Parquet schema, JSON-line keys."""
    p = _duck(f)
    if f.path.suffix == ".csv":
        rows = con.execute(f"describe select * from {_csv_src(p)}")
        return [r[0] for r in rows.fetchall()]
    if f.path.suffix == ".parquet":
        return [r[0] for r in con.execute(f"describe select * from {_parquet_src(p)}").fetchall()]
    # JSON lines: a contract column is present when some record has its key (json_type is
    # null only for an absent key; a JSON null is 'NULL'), then the other keys. Only the keys
    # outside the contract are kept per record: every record's full key list would hold memory
    # in proportion to all keys of all records for what these two aggregates say.
    counts = con.execute(
        "select "
        + ", ".join(f"count(_t[{i}])" for i in range(1, len(contract.column_names) + 1))
        + f" from {src} where _err is null"
    ).fetchone()
    present = [c for c, n in zip(contract.column_names, counts, strict=True) if n]
    rows = con.execute(f"select distinct unnest(_extra) from {src} where _err is null").fetchall()
    return present + [r[0] for r in rows]


def _select_text(f: LandingFile, present: set[str], contract: Contract, src: str) -> str:
    """SELECT producing the contract's columns as text (missing ones null) plus provenance and
    `_read_error` (why the record could not be read; it is then quarantined). `_source_file` is
    the file's own path; DuckDB reads it by its literal name (_duck)."""
    p, name = _duck(f), quote_literal(str(f.path))
    if f.path.suffix == ".jsonl":  # src: _JSONL_PARSED (a key the file lacks is null in _v)
        cols = [
            f"_v[{i}] as {quote_ident(c)}"
            if c in present
            else f"cast(null as varchar) as {quote_ident(c)}"
            for i, c in enumerate(contract.column_names, start=1)
        ]
        return (
            f"select {', '.join(cols)}, {name} as _source_file, _rec as _source_row, "
            f"_err as _read_error from {src}"
        )
    cols = [
        f"cast({quote_ident(c)} as varchar) as {quote_ident(c)}"
        if c in present
        else f"cast(null as varchar) as {quote_ident(c)}"
        for c in contract.column_names
    ]
    src = _csv_src(p) if f.path.suffix == ".csv" else _parquet_src(p)
    return (
        f"select {', '.join(cols)}, {name} as _source_file, "
        "cast(row_number() over () as bigint) as _source_row, "
        f"cast(null as varchar) as _read_error from {src}"
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
    check_not_empty(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            # A truncated upload has no footer: say so instead of pyarrow's stack trace.
            raise LandingFileError(
                f"{path}: cannot be read as parquet: {str(exc).splitlines()[0]}"
            ) from None
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.reader(fh)
            try:
                with _csv_field_limit():
                    records = sum(1 for rec in reader if rec)
            except csv.Error as exc:
                raise LandingFileError(_csv_error(path, reader.line_num, exc)) from None
        return max(records - 1, 0)
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


@contextlib.contextmanager
def _csv_field_limit() -> Iterator[None]:
    """Python's csv module refuses a value over 128 KiB by default (`field larger than field
    limit`): raised to MAX_CSV_LINE_BYTES while counting, restored after (it is process-wide)."""
    before = csv.field_size_limit(MAX_CSV_LINE_BYTES)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _csv_error(path: Path, line: int, exc: Exception) -> str:
    """The message for a CSV record the independent count cannot read, naming file and line.
    A record longer than MAX_CSV_LINE_BYTES (the loader's max_line_size) is refused as such."""
    why = str(exc)
    if "field larger than field limit" in why:
        why = (
            f"a record longer than {MAX_CSV_LINE_BYTES} bytes (max_line_size; a value this "
            "long is almost always a broken quote or a misplaced document)"
        )
    return (
        f"{path}: line {line}: cannot be read as csv: {why}; nothing from this batch was "
        "loaded. Fix or split the record and rerun"
    )


def _long_csv_record(path: Path) -> int | None:
    """First line (1-based) of the first CSV record longer than MAX_CSV_LINE_BYTES, or None: named
    when the loader refuses a line its `max_line_size` cannot hold (the error path only)."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh, _csv_field_limit():
        reader = csv.reader(fh)
        start = 1
        for rec in reader:
            if sum(map(len, rec)) + len(rec) > MAX_CSV_LINE_BYTES // 4 and (
                len(",".join(rec).encode()) > MAX_CSV_LINE_BYTES
            ):
                return start
            start = reader.line_num + 1
    return None


def check_not_empty(path: Path) -> None:
    """A 0-byte landing file is an error in every format: a CSV without its header, a Parquet file
    without its footer, and a JSON-lines file that is usually an export or upload that failed
    before its first line. A delivery with no records is a CSV header alone, or a Parquet file
    with zero rows."""
    if path.stat().st_size == 0:
        raise LandingFileError(
            f"{path}: empty file (0 bytes, not even a header line); nothing from this batch was "
            "loaded. Remove it, or replace it with the export (a CSV with only its header line "
            "is accepted as a delivery of zero rows)"
        )


def check_encoding(path: Path) -> None:
    """Raise LandingFileError naming the first line (1-based) and byte offset that are not valid
    UTF-8 (CSV, JSON lines). Text landing files must be UTF-8: a file in another encoding is
    refused, not guessed (decoding cp1252 as latin-1 "works" and silently corrupts every accented
    name). The check itself is scan_file's, done in the one read discover() makes of the bytes."""
    error = scan_file(path).encoding_error
    if error is not None:
        raise LandingFileError(error)


def check_csv_header(path: Path, contract: Contract) -> None:
    """Refuse a CSV whose header holds no contract column when split by ',' but does when split
    by another common delimiter: the file was exported with the wrong delimiter. (DuckDB's
    sniffer would guess it; the contract's format is comma-separated, and a guessed delimiter
    can split values differently from the independent record count.) A header matching no
    contract column by any delimiter is left to the schema-drift gate, which names the columns."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        first = fh.readline().rstrip("\r\n")
    expected = set(contract.column_names)
    seen = next(csv.reader([first]), [])
    if expected & {c.strip() for c in seen}:
        return
    for delim, name in _OTHER_DELIMITERS.items():
        fields = next(csv.reader([first], delimiter=delim), [])
        if expected & {c.strip() for c in fields}:
            # A header holds column names, not values; cut anyway so a log line stays short.
            shown = first if len(first) <= 300 else first[:300] + "..."
            raise LandingFileError(
                f"{path}: line 1: the header has {len(seen)} column(s) when split by ',' "
                f"({shown!r}); expected the comma-separated columns "
                f"{', '.join(contract.column_names)}. The delimiter is likely wrong: the header "
                f"splits into contract columns by {name}. Re-export the file comma-separated; "
                "nothing from this batch was loaded"
            )


def records_in(f: LandingFile) -> int:
    """count_records for a discovered file: the JSON-lines count scan_file took in its single
    read of the bytes, else (CSV, Parquet) count_records. An empty file raises either way."""
    check_not_empty(f.path)
    return f.records if f.records is not None else count_records(f.path)


def check_readable(f: LandingFile, contract: Contract) -> None:
    """File-level defects found before the loader reads a file, each a LandingFileError naming
    the file and line: 0 bytes, not UTF-8 (CSV, JSON lines; found by scan_file's read of the
    bytes), a CSV with the wrong delimiter."""
    path = f.path
    check_not_empty(path)
    if f.encoding_error is not None:
        raise LandingFileError(f.encoding_error)
    if path.suffix == ".csv":
        check_csv_header(path, contract)


def mask_file_row(contract: Contract, row: dict[str, Any]) -> dict[str, Any]:
    """Mask a row read straight from a file by allow-list, here at the source (masking.mask_row):
    a PII column keeps a hint only of a clean value of its kind, a non-PII value shows only when
    plausible for its column (an e-mail in `city` does not), every column the contract does not
    know (a renamed `email` is still an email) and every value of a ragged row are masked. No
    later edge has to mask it again. Values come back as text ("" for a null); a JSON object
    (JSON lines) as JSON text, so only its keys show."""
    as_read = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()}
    return {
        k: "" if v is None else v if isinstance(v, str) else str(v)
        for k, v in mask_row(contract, as_read).items()
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
    con: duckdb.DuckDBPyConnection,
    f: LandingFile,
    present: list[str],
    contract: Contract,
    src: str,
) -> dict[str, dict]:
    """Contract columns whose physical type in this file is not one their logical type accepts."""
    p = _duck(f)
    found: dict[str, dict] = {}
    if f.path.suffix == ".parquet":
        types = dict(
            (r[0], r[1])
            for r in con.execute(f"describe select * from {_parquet_src(p)}").fetchall()
        )
        for col in contract.column_names:
            if col not in types or parquet_type_accepted(
                contract.field(col).logical_type, types[col]
            ):
                continue
            q = quote_ident(col)
            n, rows = con.execute(
                f"select count({q}), list(_r order by _r)[1:{SAMPLE_ROWS}] from (select {q}, "
                f"row_number() over () as _r from {_parquet_src(p)}) where {q} is not null"
            ).fetchone()
            if n:
                found[col] = {"types": [types[col]], "rows": n, "sample_rows": rows}
    elif f.path.suffix == ".jsonl":  # src: _JSONL_PARSED; every column in one pass
        checked = [
            (i, col) for i, col in enumerate(contract.column_names, start=1) if col in present
        ]
        bad: dict[str, tuple[int, str]] = {}
        for i, col in checked:
            ok = ", ".join(quote_literal(t) for t in JSON_TYPES[contract.field(col).logical_type])
            bad[col] = (i, f"filter (where _t[{i}] not in ({ok}))")
        if not bad:
            return found
        # Counted first; the types found and the sample rows (an ordered list per column, the
        # costly part of one pass over every record) only for the columns with a bad value.
        counts = con.execute(
            f"select {', '.join(f'count(*) {b}' for _, b in bad.values())} "
            f"from {src} where _err is null"
        ).fetchone()
        retyped = [col for col, n in zip(bad, counts, strict=True) if n]
        if retyped:
            aggregates = []
            for col in retyped:
                i, b = bad[col]
                aggregates += [
                    f"count(*) {b}",
                    f"list(distinct _t[{i}]) {b}",
                    f"(list(_rec order by _rec) {b})[1:{SAMPLE_ROWS}]",
                ]
            got = con.execute(
                f"select {', '.join(aggregates)} from {src} where _err is null"
            ).fetchone()
            for k, col in enumerate(retyped):
                n, kinds, rows = got[3 * k : 3 * k + 3]
                found[col] = {"types": sorted(kinds), "rows": n, "sample_rows": rows}
    return found


def _file_sample(con: duckdb.DuckDBPyConnection, f: LandingFile, contract: Contract) -> list[dict]:
    p = _duck(f)
    if f.path.suffix == ".jsonl":
        rows = []
        with f.path.open(encoding="utf-8-sig", errors="replace") as fh:
            for line in fh:
                try:
                    row = json.loads(line) if line.strip() else None
                except ValueError:
                    row = None  # a malformed line is quarantined, not sampled
                if isinstance(row, dict):
                    rows.append(row)
                if len(rows) == SAMPLE_ROWS:
                    break
    else:
        src = _csv_src(p) if f.path.suffix == ".csv" else _parquet_src(p)
        cur = con.execute(f"select * from {src} limit {SAMPLE_ROWS}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return [mask_file_row(contract, r) for r in rows]


def read_into(
    con: duckdb.DuckDBPyConnection, table: str, files: list[LandingFile], contract: Contract
) -> ReadOutcome:
    """Append every file's rows (as text) to `table`, which must already exist with the contract's
    columns, `_source_file`, `_source_row` and `_read_error`. A file-level defect (empty, not
    UTF-8, wrong CSV delimiter, unreadable) raises LandingFileError naming the file and line; a
    malformed JSON line is staged with `_read_error` set (quarantined), the rest of its file loads."""
    out = ReadOutcome(0, {}, {})
    with _literal_names(files) as named:
        for f in named:
            _read_one(con, table, f, contract, out)
    return out


def _read_one(
    con: duckdb.DuckDBPyConnection,
    table: str,
    f: LandingFile,
    contract: Contract,
    out: ReadOutcome,
) -> None:
    """read_into for one file (its `read_as` set by _literal_names)."""
    check_readable(f, contract)
    src = ""
    try:
        if f.path.suffix == ".jsonl" and f.bom:  # read_ndjson_objects refuses a BOM
            src = _parse_jsonl(con, _jsonl_by_line(con, f), contract)
        elif f.path.suffix == ".jsonl":
            try:
                src = _parse_jsonl(con, _jsonl_fast(f), contract)
            except duckdb.Error:
                # A malformed line: read line by line so only that line is set aside.
                src = _parse_jsonl(con, _jsonl_by_line(con, f), contract)
        present = _columns_in_file(con, f, src, contract)
        before = con.execute(f"select count(*) from {table}").fetchone()[0]
        con.execute(f"insert into {table} {_select_text(f, set(present), contract, src)}")
        after = con.execute(f"select count(*) from {table}").fetchone()[0]
        retyped = _retyped_in_file(con, f, present, contract, src)
    except duckdb.Error as exc:
        # The first line of DuckDB's message says what and where; its internals are no help
        # in a step failure, so the chained exception is dropped (`from None`).
        first = str(exc).splitlines()[0]
        line = _long_csv_record(f.path) if f.path.suffix == ".csv" else None
        if line is not None:  # DuckDB names the line wrongly ("Line: 1") and prints it
            raise LandingFileError(
                _csv_error(f.path, line, csv.Error("field larger than field limit"))
            ) from None
        raise LandingFileError(
            f"{f.path}: cannot be read as {f.path.suffix[1:]}: {first}; nothing from this "
            "batch was loaded"
        ) from None
    finally:
        con.execute(
            f"drop view if exists {_JSONL_PARSED}; drop table if exists {_JSONL_PARSED_TABLE}; "
            f"drop table if exists {_JSONL_LINES}"
        )
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
