"""Rewrite files that hold an erased person: landing files and outbox drops.

A file is searched cell by cell (identifiers.cell_matches): an email, a source or customer id
as it is, a phone by its E.164. A file holding a match is rewritten without those rows to a
temporary name in its folder and renamed over the original (atomic: a reader sees the old file
or the new one, never half), or removed when no row is left. Formats: CSV (header kept, UTF-8
BOM kept), JSON lines (the other lines kept byte for byte), Parquet. A cheap byte search first
skips files that cannot hold any identifier (text formats).

Grain of the result: one rewritten or removed file, with the rows dropped per request.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.privacy.identifiers import cell_matches

SUFFIXES = (".csv", ".jsonl", ".parquet")


@dataclass
class Rewrite:
    """One file rewritten (or removed: `removed`) and the rows it lost per request id."""

    path: Path
    rows_by_request: dict[str, int] = field(default_factory=dict)
    removed: bool = False
    sha256: str | None = None
    size: int = 0


def _prefilter(data: bytes, needles: dict[tuple[str, str], set[str]]) -> bool:
    """False only when the bytes cannot hold any identifier (so the file need not be parsed)."""
    low = data.lower()
    for kind, value in needles:
        if kind == "phone":
            continue
        if value.lower().encode() in low:
            return True
    tails = sorted({v[-7:] for k, v in needles if k == "phone"})
    if tails:
        # the last seven digits, as written in any format (separators between digits allowed),
        # not inside a longer run of digits such as a timestamp's
        sep = rb"[ ().\-/]{0,3}"
        alts = b"|".join(sep.join(re.escape(ch.encode()) for ch in t) for t in tails)
        if re.search(rb"(?:" + alts + rb")(?![0-9])", data):
            return True
    return False


def _row_hits(values, needles) -> set[str]:
    hits: set[str] = set()
    for v in values:
        if isinstance(v, dict | list):
            hits |= _row_hits(v.values() if isinstance(v, dict) else v, needles)
        else:
            hits |= cell_matches(v, needles)
    return hits


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.erasure.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _csv(data: bytes, needles) -> tuple[bytes | None, dict[str, int], int]:
    bom = data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return None, {}, 0
    header, body = rows[0], rows[1:]
    kept, dropped = [], {}
    for row in body:
        hits = _row_hits(row, needles)
        for r in hits:
            dropped[r] = dropped.get(r, 0) + 1
        if not hits:
            kept.append(row)
    if not dropped:
        return None, {}, len(body)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(kept)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode(), dropped, len(kept)


def _jsonl(data: bytes, needles) -> tuple[bytes | None, dict[str, int], int]:
    kept, dropped = [], {}
    for line in data.splitlines(keepends=True):
        try:
            obj = json.loads(line) if line.strip() else None
        except ValueError:
            obj = line.decode("utf-8", "replace")  # a malformed line is searched as text
        hits = _row_hits([obj] if not isinstance(obj, dict) else obj.values(), needles)
        for r in hits:
            dropped[r] = dropped.get(r, 0) + 1
        if not hits:
            kept.append(line)
    if not dropped:
        return None, {}, 0
    return b"".join(kept), dropped, sum(1 for ln in kept if ln.strip())


def _parquet(source, needles) -> tuple[bytes | None, dict[str, int], int]:
    table = pq.read_table(source)
    mask, dropped = [], {}
    for row in table.to_pylist():
        hits = _row_hits(row.values(), needles)
        for r in hits:
            dropped[r] = dropped.get(r, 0) + 1
        mask.append(not hits)
    if not dropped:
        return None, {}, table.num_rows
    kept = table.filter(pa.array(mask))
    sink = io.BytesIO()
    pq.write_table(kept, sink)
    return sink.getvalue(), dropped, kept.num_rows


def rewrite_data(
    suffix: str, data: bytes, needles: dict[tuple[str, str], set[str]]
) -> tuple[bytes | None, dict[str, int], int]:
    """The bytes of a `suffix` file (.csv, .jsonl, .parquet) without the rows holding an
    identifier in `needles`: (new bytes or None when no row matched, rows dropped per request,
    rows left). The same rewrite as rewrite_file, for bytes held elsewhere (an S3 object)."""
    if suffix == ".parquet":
        return _parquet(pa.BufferReader(data), needles)
    if not _prefilter(data, needles):
        return None, {}, 0
    return (_csv if suffix == ".csv" else _jsonl)(data, needles)


def rewrite_file(path: Path, needles: dict[tuple[str, str], set[str]]) -> Rewrite | None:
    """Drop the rows of `path` that hold an identifier in `needles` ((kind, normalised value)
    → request ids); None when the file holds none."""
    if path.suffix == ".parquet":
        new, dropped, left = _parquet(path, needles)
    else:
        data = path.read_bytes()
        if not _prefilter(data, needles):
            return None
        new, dropped, left = (_csv if path.suffix == ".csv" else _jsonl)(data, needles)
    if new is None:
        return None
    out = Rewrite(path, dropped)
    if left == 0:
        path.unlink()
        out.removed = True
        return out
    _atomic_write(path, new)
    out.sha256, out.size = hashlib.sha256(new).hexdigest(), len(new)
    return out


def rewrite_tree(root: Path, needles: dict[tuple[str, str], set[str]]) -> list[Rewrite]:
    """rewrite_file for every data file under `root` (a missing root holds nothing)."""
    if not root.exists() or not needles:
        return []
    done = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in SUFFIXES and not path.name.startswith("."):
            with contextlib.suppress(FileNotFoundError):
                r = rewrite_file(path, needles)
                if r is not None:
                    done.append(r)
    return done
