"""Rewrite files that hold an erased person: landing files and outbox drops.

A file is searched cell by cell (identifiers.cell_matches): an email, a source or customer id
as it is, a phone by its E.164. A file holding a match is rewritten without those rows to a
temporary name in its folder and renamed over the original (atomic: a reader sees the old file
or the new one, never half), or removed when no row is left. Formats: CSV (header kept, UTF-8
BOM kept), JSON lines (the other lines kept byte for byte), Parquet. In the text formats a cheap
test per line (LineFilter) picks the lines that can hold an identifier; only those are compared
cell by cell, and the lines kept are copied as they were, byte for byte; so a file of tens of
millions of rows is read in a few passes at C speed (LineFilter.lines), never parsed whole, and
never held whole in memory: it is read in pieces of whole lines (_text_chunks), once to find
the lines to drop and, when there are some, once more to copy the rest. Shared among worker
processes (rewrite_trees), a large text file is searched in pieces of whole lines, one per
task, and written once.

Grain of the result: one rewritten or removed file, with the rows dropped per request.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import ahocorasick_rs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestration.ingest.file_hash import stat_signature
from orchestration.privacy.identifiers import PHONE_PATTERN, cell_matches

SUFFIXES = (".csv", ".jsonl", ".parquet")


@dataclass
class Rewrite:
    """One file rewritten (or removed: `removed`) and the rows it lost per request id."""

    path: Path
    rows_by_request: dict[str, int] = field(default_factory=dict)
    removed: bool = False
    sha256: str | None = None
    size: int = 0
    # the new file's stat signature right after it replaced the old one (file_hash.stat_signature)
    signature: tuple[int, ...] | None = None


# Where a cell's text can end in a line of CSV or JSON: Python's strip() whitespace (ASCII), the
# CSV separator and quote, JSON's punctuation.
_BOUNDARY_BYTES = b' \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f,":{}[]'
_MARK = b"\x1f"
_TO_MARK = bytes.maketrans(_BOUNDARY_BYTES, _MARK * len(_BOUNDARY_BYTES))
_BOUNDARY = re.compile(b"[" + re.escape(_BOUNDARY_BYTES) + b"]+")
# a run of phone characters from its first digit (identifiers.looks_like_phone's alphabet)
_PHONE_RUN = re.compile(rb"[0-9][0-9 ().\-/]{5,}")
_NON_DIGIT = re.compile(rb"[^0-9]")
_PHONE_SEPARATORS = b" ().-/"  # the run's characters besides digits
# Text per pass of LineFilter.lines: its per-byte arrays and lower-cased copy stay this small
# whatever the file's size.
_CHUNK = 1 << 24


class LineFilter:
    """Which lines of a CSV or JSON-lines file may hold an identifier of `needles`: a cheap test
    per line (C-level splits and set lookups) so that only those lines are parsed and compared
    cell by cell (identifiers.cell_matches). It never skips a line a cell match would find:

    - a line with other than ASCII or with a JSON escape other than `\\"` is always a candidate;
    - an email or id matches only as a whole cell, stripped: its lower-case text is then one piece
      of the lower-cased line split at cell boundaries (`_BOUNDARY`); a needle holding a boundary
      character is searched as a substring instead;
    - a phone matches by its E.164, whose last seven digits are the last seven of the cell's
      digits (the assumption the whole erasure makes about written phone numbers: separators,
      a national or international prefix, never other trailing digits).
    """

    def __init__(self, needles: dict[tuple[str, str], set[str]]):
        plain = {v.lower().encode() for k, v in needles if k != "phone"}
        self.substrings = sorted(p for p in plain if _BOUNDARY.search(p) or not p.isascii())
        self.pieces = plain - set(self.substrings)
        # a JSON escape can hide an identifier's text (\u00e5, \/); an escaped quote only
        # can hide one holding a quote or a backslash itself
        odd = any(b'"' in p or b"\\" in p for p in plain)
        self.escape = re.compile(rb"\\" if odd else rb'\\[^"]')
        self.tails = {_NON_DIGIT.sub(b"", v.encode())[-7:] for k, v in needles if k == "phone"}
        self.odd = odd
        self._pieces = _automaton({_MARK + p + _MARK for p in self.pieces})
        # a tail of fewer than seven digits never equals a cell's last seven: no automaton word
        self._tails = _automaton({t for t in self.tails if len(t) == 7})

    def __call__(self, line: bytes) -> bool:
        if not line.isascii() or self.escape.search(line):
            return True
        low = line.lower()
        if not self.pieces.isdisjoint(_BOUNDARY.split(low)):
            return True
        if any(s in low for s in self.substrings):
            return True
        if self.tails:
            for run in _PHONE_RUN.findall(line):
                digits = _NON_DIGIT.sub(b"", run)
                if len(digits) >= 7 and digits[-7:] in self.tails:
                    return True
        return False

    def lines(self, data: bytes, breaks: np.ndarray | None = None) -> set[int]:
        """Indexes (bytes.splitlines) of the candidate lines of `data`: every line the filter
        passes when called line by line (and at most a line more where a match runs over a line
        break), found in passes over the whole text instead of a call per line: non-ASCII and
        escape bytes by numpy, the needles by one Aho-Corasick automaton over the lower-cased
        text (a hit counts when cell boundaries surround it, as the split does), the phone tails
        by another over the text without the phone separators (a hit counts at the end of a
        digit run). `breaks`: _line_breaks(data), when the caller has it."""
        breaks = _line_breaks(data) if breaks is None else breaks
        arr = np.frombuffer(data, np.uint8)
        out: set[int] = set()
        for s, e in _chunks(len(data), breaks):
            a = arr[s:e]
            offsets = [np.flatnonzero(a >= 0x80)]
            slash = np.flatnonzero(a == 0x5C)
            if slash.size and not self.odd:  # `\"` hides nothing
                after = a[np.minimum(slash + 1, len(a) - 1)]
                slash = slash[(slash + 1 < len(a)) & (after != 0x22)]
            offsets.append(slash)
            low = data[s:e].lower()
            offsets.append(np.array(self._piece_hits(low), np.int64))
            for sub in self.substrings:
                i = low.find(sub)
                while i >= 0:
                    offsets.append(np.arange(i, i + len(sub), dtype=np.int64))
                    i = low.find(sub, i + 1)
            hit = np.unique(np.concatenate(offsets).astype(np.int64)) + s
            out.update(np.searchsorted(breaks, hit).tolist())
            if self.tails:
                base = int(np.searchsorted(breaks, s))
                out.update((self._tail_lines(data[s:e]) + base).tolist())
        return out

    def _piece_hits(self, low: bytes) -> list[int]:
        """Offsets in `low` where a needle stands as a whole piece between cell boundaries:
        every boundary character becomes one marker (a one-for-one translation, so offsets
        stay), and the automaton looks for marker + needle + marker."""
        if not self.pieces:
            return []
        text = _MARK + low.translate(_TO_MARK) + _MARK
        # overlapping: two needles in adjacent cells share the marker between them
        return [start for _, start, _ in self._pieces.find_matches_as_indexes(text, True)]

    def _tail_lines(self, chunk: bytes) -> np.ndarray:
        """Line indexes in `chunk` of a digit run (separators dropped) ending in a phone tail."""
        if self._tails is None:
            return np.empty(0, np.int64)
        text = chunk.translate(None, _PHONE_SEPARATORS)
        # end: one past the tail's last digit, which must end its digit run
        ends = [
            end - 1
            for _, _, end in self._tails.find_matches_as_indexes(text, True)
            if end == len(text) or not 0x30 <= text[end] <= 0x39
        ]
        if not ends:
            return np.empty(0, np.int64)
        # the separators are not line breaks: the lines of `text` are the chunk's
        return np.searchsorted(_line_breaks(text), np.array(ends, np.int64))


def _automaton(words: set[bytes]) -> ahocorasick_rs.BytesAhoCorasick | None:
    """An Aho-Corasick automaton over `words` that reports every match, overlapping ones
    included; None for no word."""
    if not words:
        return None
    # a DFA: slower to build than the default, faster to search (one per tree and process)
    return ahocorasick_rs.BytesAhoCorasick(
        sorted(words), implementation=ahocorasick_rs.Implementation.DFA
    )


def _line_breaks(data: bytes) -> np.ndarray:
    """Offsets of the bytes that end a line where bytes.splitlines splits: a newline, a carriage
    return not followed by one. Line i ends at breaks[i]; the line of offset x is
    searchsorted(breaks, x)."""
    arr = np.frombuffer(data, np.uint8)
    out = [np.empty(0, np.int64)]
    for s in range(0, len(arr), _CHUNK):
        a = arr[s : s + _CHUNK + 1]  # one byte more: a carriage return sees what follows it
        n = min(_CHUNK, len(arr) - s)
        nl, cr = a == 0x0A, a == 0x0D
        cr[:-1] &= ~nl[1:]
        out.append(np.flatnonzero((nl | cr)[:n]).astype(np.int64) + s)
    return np.concatenate(out)


def _chunks(size: int, breaks: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) spans of about _CHUNK bytes, each ending just after a line break (or at the
    end): no line is split between two spans."""
    spans, s = [], 0
    while s < size:
        i = int(np.searchsorted(breaks, s + _CHUNK))
        e = size if s + _CHUNK >= size or i >= len(breaks) else int(breaks[i]) + 1
        spans.append((s, e))
        s = e
    return spans


def _line_spans(size: int, breaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of every line, ends exclusive and holding the line break."""
    ends = breaks + 1
    if size and (not len(breaks) or breaks[-1] != size - 1):
        ends = np.append(ends, size)
    starts = np.concatenate([np.zeros(1, np.int64), ends[:-1]]) if len(ends) else ends
    return starts, ends


def _row_hits(values, needles) -> set[str]:
    hits: set[str] = set()
    for v in values:
        if isinstance(v, dict | list):
            hits |= _row_hits(v.values() if isinstance(v, dict) else v, needles)
        else:
            hits |= cell_matches(v, needles)
    return hits


def _atomic_write(path: Path, pieces: Iterable[bytes]) -> tuple[str, int]:
    """Write `pieces` one after the other to a temporary name beside `path`, then rename it over
    `path`; returns the new content's sha256 and size."""
    tmp = path.with_name(f".{path.name}.erasure.tmp")
    digest, size = hashlib.sha256(), 0
    with open(tmp, "wb") as fh:
        for piece in pieces:
            fh.write(piece)
            digest.update(piece)
            size += len(piece)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return digest.hexdigest(), size


@dataclass
class _Scan:
    """What one pass over a CSV or JSON-lines text found: the byte spans [start, end) of the
    lines to drop (in file order), rows dropped per request, and the rows the text holds (CSV:
    the lines after the header; JSON lines: the lines that are not blank)."""

    drops: list[tuple[int, int]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    rows: int = 0

    def drop(self, start: int, end: int, hits: set[str]) -> None:
        for r in hits:
            self.dropped[r] = self.dropped.get(r, 0) + 1
        if hits:
            self.drops.append((start, end))

    @property
    def left(self) -> int:
        return self.rows - len(self.drops)

    @classmethod
    def joined(cls, parts: list[_Scan]) -> _Scan:
        """One file's scan from the scans of its pieces, in file order."""
        whole = cls(rows=sum(p.rows for p in parts))
        for p in parts:
            whole.drops += p.drops
            for r, n in p.dropped.items():
                whole.dropped[r] = whole.dropped.get(r, 0) + n
        return whole


def _blocks(source: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    """The bytes of `source` from `start` to `end` (the end of the text when None) in blocks of
    at most _CHUNK."""
    source.seek(start)
    left = None if end is None else end - start
    while left is None or left > 0:
        block = source.read(_CHUNK if left is None else min(_CHUNK, left))
        if not block:
            return
        if left is not None:
            left -= len(block)
        yield block


def _text_chunks(
    source: BinaryIO, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """(offset, text) pieces of `source` from `start` to `end` (the end of the text when None) of
    about _CHUNK bytes, each ending just after a newline (the last at `end`): a piece holds whole
    lines when `start` and `end` are line starts, and a file of gigabytes is never held whole. A
    line longer than a piece makes that piece longer."""
    offset, rest = start, b""
    for block in _blocks(source, start, end):
        text = rest + block
        cut = text.rfind(b"\n") + 1
        if cut:
            yield offset, text[:cut]
            offset += cut
        rest = text[cut:]
    if rest:
        yield offset, rest


def _csv_scan(
    source: BinaryIO, needles, lines: LineFilter, start: int = 0, end: int | None = None
) -> _Scan | None:
    """The CSV lines to drop from `start` to `end` (line starts; the whole file by default),
    piece by piece; None when a quoted cell runs over a line break (a row is then not a line:
    the caller parses the file whole)."""
    scan = _Scan()
    for offset, chunk in _text_chunks(source, start, end):
        breaks = _line_breaks(chunk)
        if not _quotes_close_on_their_line(chunk, breaks):
            return None
        starts, ends = _line_spans(len(chunk), breaks)
        scan.rows += len(starts)
        for i in sorted(lines.lines(chunk, breaks)):
            if offset == 0 and i == 0:  # the header
                continue
            s, e = int(starts[i]), int(ends[i])
            row = next(csv.reader([chunk[s:e].decode("utf-8")]), [])
            scan.drop(offset + s, offset + e, _row_hits(row, needles))
    if start == 0:  # the header
        scan.rows = max(scan.rows - 1, 0)
    return scan


def _quotes_close_on_their_line(data: bytes, breaks: np.ndarray) -> bool:
    """Whether every line holds an even number of double quotes (no quoted cell runs over a
    line break), counted chunk by chunk."""
    arr = np.frombuffer(data, np.uint8)
    for s, e in _chunks(len(data), breaks):
        quotes = np.flatnonzero(arr[s:e] == 0x22) + s
        if quotes.size and (np.bincount(np.searchsorted(breaks, quotes)) % 2).any():
            return False
    return True


def _csv_records(
    data: bytes, needles, candidates: set[int]
) -> tuple[bytes | None, dict[str, int], int]:
    """A CSV with a quoted cell over several lines without its rows holding an identifier:
    parsed and written whole."""
    bom = data.startswith(b"\xef\xbb\xbf")
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header = next(reader, None)
    if header is None:
        return None, {}, 0
    kept, dropped = [], {}
    start = reader.line_num  # a row spans the physical lines [start, reader.line_num)
    for row in reader:
        end = reader.line_num
        near = (
            start in candidates
            if end - start == 1
            else not candidates.isdisjoint(range(start, end))
        )
        start = end
        hits = _row_hits(row, needles) if near else set()
        for r in hits:
            dropped[r] = dropped.get(r, 0) + 1
        if not hits:
            kept.append(row)
    if not dropped:
        return None, {}, len(kept)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(kept)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode(), dropped, len(kept)


_BLANK_STARTS = list(b" \t\r\n\x0b\x0c")


def _jsonl_scan(
    source: BinaryIO, needles, lines: LineFilter, start: int = 0, end: int | None = None
) -> _Scan:
    """The JSON lines to drop from `start` to `end` (line starts; the whole file by default),
    piece by piece; a malformed line is searched as text."""
    scan = _Scan()
    for offset, chunk in _text_chunks(source, start, end):
        breaks = _line_breaks(chunk)
        starts, ends = _line_spans(len(chunk), breaks)
        # a blank line starts with white space or is empty: only those are looked at
        arr = np.frombuffer(chunk, np.uint8)
        first = arr[np.minimum(starts, len(arr) - 1)]
        maybe_blank = np.flatnonzero((ends == starts) | np.isin(first, _BLANK_STARTS))
        blank = sum(1 for i in maybe_blank if not chunk[int(starts[i]) : int(ends[i])].strip())
        scan.rows += len(starts) - blank
        for i in sorted(lines.lines(chunk, breaks)):
            s, e = int(starts[i]), int(ends[i])
            line = chunk[s:e]
            try:
                obj = json.loads(line) if line.strip() else None
            except ValueError:
                obj = line.decode("utf-8", "replace")
            values = [obj] if not isinstance(obj, dict) else obj.values()
            scan.drop(offset + s, offset + e, _row_hits(values, needles))
    return scan


def _kept(open_source: Callable[[], BinaryIO], drops: list[tuple[int, int]]) -> Iterator[bytes]:
    """The bytes of the source outside the `drops` spans, byte for byte, read in blocks of
    _CHUNK."""
    with open_source() as src:
        at = 0
        for start, end in drops:
            yield from _blocks(src, at, start)
            at = end
        yield from _blocks(src, at, None)


_ASCII_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.strip() removes in ASCII
# rows of a Parquet file read at a time by a rewrite (a batch and its filtered copy in memory)
PARQUET_BATCH_ROWS = 65_536


def _parquet_candidates(table: pa.Table, lines: LineFilter) -> pa.Array:
    """Per row of a Parquet table: may it hold an identifier (LineFilter's rules, per column in
    Arrow): a cell of other than ASCII, one whose stripped lower-case text is a needle, or one
    written as a phone (identifiers.looks_like_phone's pattern, stripped) whose digits end in a
    phone's last seven; a nested or binary cell whenever it is set."""
    plain = pa.array(sorted(p.decode() for p in lines.pieces | set(lines.substrings)), pa.string())
    tails = pa.array(sorted(t.decode() for t in lines.tails), pa.string())
    n = table.num_rows
    mask = pa.array([False] * n, pa.bool_())
    lowered = []
    for col in table.columns:
        if pa.types.is_nested(col.type) or pa.types.is_binary(col.type):
            mask = pc.or_(mask, pc.is_valid(col))
            continue
        text = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
        text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        mask = pc.or_(mask, pc.fill_null(pc.invert(pc.string_is_ascii(text)), False))
        trimmed = pc.utf8_trim(text, _ASCII_WHITESPACE)
        lowered.append(pc.utf8_lower(trimmed))
        if len(tails):
            # the digits are taken only of the few cells written like a phone
            rows = pc.indices_nonzero(
                pc.fill_null(pc.match_substring_regex(trimmed, PHONE_PATTERN), False)
            )
            if len(rows):
                digits = pc.replace_substring_regex(pc.take(trimmed, rows), "[^0-9]", "")
                ok = pc.and_(pc.greater_equal(pc.utf8_length(digits), 7),
                             pc.is_in(pc.utf8_slice_codeunits(digits, -7), value_set=tails))  # fmt: skip
                phone = np.zeros(n, dtype=bool)
                phone[pc.filter(rows, ok).to_numpy()] = True
                mask = pc.or_(mask, pa.array(phone))
    if lowered and len(plain):
        # one lookup for every column (the needles hashed once per batch, not once per column)
        found = pc.fill_null(pc.is_in(pa.concat_arrays(lowered), value_set=plain), False)
        for i in range(len(lowered)):
            mask = pc.or_(mask, found.slice(i * n, n))
    return mask


def _parquet(source, needles, lines: LineFilter) -> tuple[bytes | None, dict[str, int], int]:
    """A Parquet rewrite in record batches of PARQUET_BATCH_ROWS: one pass finds the rows to
    drop, a second writes the rest (only when a row is dropped); neither holds the whole table
    (a landing file of millions of rows would be read, filtered and written as three copies)."""
    parquet = pq.ParquetFile(source)
    dropped: dict[str, int] = {}
    erased: list[list[int]] = []  # per batch, the rows (within it) to drop
    rows = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        table = pa.Table.from_batches([batch])
        candidates = pc.indices_nonzero(_parquet_candidates(table, lines))
        hit_rows = []
        for i, row in zip(candidates.to_pylist(), table.take(candidates).to_pylist(), strict=True):
            hits = _row_hits(row.values(), needles)
            for r in hits:
                dropped[r] = dropped.get(r, 0) + 1
            if hits:
                hit_rows.append(i)
        erased.append(hit_rows)
        rows += table.num_rows
    if not dropped:
        return None, {}, rows
    sink = io.BytesIO()
    left = 0
    with pq.ParquetWriter(sink, parquet.schema_arrow) as writer:
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        for batch, hit_rows in zip(batches, erased, strict=True):
            table = pa.Table.from_batches([batch])
            keep = pc.invert(pc.is_in(pa.array(range(table.num_rows), pa.int64()),
                                      value_set=pa.array(hit_rows, pa.int64())))  # fmt: skip
            kept = table.filter(keep)
            writer.write_table(kept)
            left += kept.num_rows
    return sink.getvalue(), dropped, left


def _text(
    suffix: str, open_source: Callable[[], BinaryIO], needles, lines: LineFilter
) -> tuple[Iterable[bytes] | None, dict[str, int], int]:
    """A CSV or JSON-lines rewrite: one pass finds the lines to drop, a second copies the rest
    (only when a line is dropped); neither holds the whole text."""
    with open_source() as src:
        scan = (_csv_scan if suffix == ".csv" else _jsonl_scan)(src, needles, lines)
    if scan is None:
        with open_source() as src:
            data = src.read()
        new, dropped, left = _csv_records(data, needles, lines.lines(data))
        return (None if new is None else [new]), dropped, left
    if not scan.dropped:
        return None, {}, scan.rows
    return _kept(open_source, scan.drops), scan.dropped, scan.left


def _rewrite(
    suffix: str, path_or_data: Path | bytes, needles, lines: LineFilter
) -> tuple[Iterable[bytes] | None, dict[str, int], int]:
    """(new content as pieces or None when no row matched, rows dropped per request, rows
    left) for a file on disk or bytes held in memory."""
    if isinstance(path_or_data, Path):
        path = path_or_data

        def open_source() -> BinaryIO:
            return open(path, "rb")
    else:
        data = path_or_data

        def open_source() -> BinaryIO:
            return io.BytesIO(data)

    if suffix == ".parquet":
        source = path_or_data if isinstance(path_or_data, Path) else pa.BufferReader(path_or_data)
        new, dropped, left = _parquet(source, needles, lines)
        return (None if new is None else [new]), dropped, left
    return _text(suffix, open_source, needles, lines)


def rewrite_data(
    suffix: str,
    data: bytes,
    needles: dict[tuple[str, str], set[str]],
    lines: LineFilter | None = None,
) -> tuple[bytes | None, dict[str, int], int]:
    """The bytes of a `suffix` file (.csv, .jsonl, .parquet) without the rows holding an
    identifier in `needles`: (new bytes or None when no row matched, rows dropped per request,
    rows left). The same rewrite as rewrite_file, for bytes held elsewhere (an S3 object).
    `lines`: the needles' LineFilter, built once for many files."""
    new, dropped, left = _rewrite(suffix, data, needles, lines or LineFilter(needles))
    return (None if new is None else b"".join(new)), dropped, left


def rewrite_file(
    path: Path, needles: dict[tuple[str, str], set[str]], lines: LineFilter | None = None
) -> Rewrite | None:
    """Drop the rows of `path` that hold an identifier in `needles` ((kind, normalised value)
    → request ids); None when the file holds none. The text is read in pieces, never whole."""
    new, dropped, left = _rewrite(path.suffix, path, needles, lines or LineFilter(needles))
    if new is None:
        return None
    return _replace(path, new, dropped, left)


def _replace(path: Path, new: Iterable[bytes], dropped: dict[str, int], left: int) -> Rewrite:
    """`path` replaced by `new` (removed when no row is left)."""
    out = Rewrite(path, dropped)
    if left == 0:
        path.unlink()
        out.removed = True
        return out
    out.sha256, out.size = _atomic_write(path, new)
    out.signature = stat_signature(path.stat())
    return out


# Below this many bytes a tree is rewritten in the step's own process: starting the worker
# processes (each imports numpy, pyarrow and the automaton) would cost more than it saves.
PARALLEL_FROM_BYTES = 256 << 20


def rewrite_trees(
    trees: list[tuple[Path, dict[tuple[str, str], set[str]]]], workers: int | None = None
) -> list[list[Rewrite]]:
    """rewrite_file for every data file under each root (a missing root holds nothing) with its
    needles: the rewrites of each tree, in path order. Each file
    is searched and rewritten on its own, so the files of all the trees are shared among
    `workers` processes (default: C360_DUCKDB_THREADS, the cores the warehouse may use) when
    they are large; the result is the same as one process's."""
    jobs: list[tuple[Path, int]] = []  # (file, index of its tree)
    for i, (root, needles) in enumerate(trees):
        if root.exists() and needles:
            jobs += [
                (p, i)
                for p in sorted(root.rglob("*"))
                if p.is_file() and p.suffix in SUFFIXES and not p.name.startswith(".")
            ]
    sizes = [_size(p) for p, _ in jobs]
    from orchestration.warehouse import worker_processes

    workers = worker_processes() if workers is None else workers
    all_needles = [needles for _, needles in trees]
    if workers > 1 and len(jobs) > 1 and sum(sizes) >= PARALLEL_FROM_BYTES:
        done = _in_processes(jobs, sizes, all_needles, workers)
    else:
        filters = [LineFilter(n) if n else None for n in all_needles]
        done = [_rewrite_existing(p, all_needles[i], filters[i]) for p, i in jobs]
    out: list[list[Rewrite]] = [[] for _ in trees]
    for (_, i), rewrite in zip(jobs, done, strict=True):
        if rewrite is not None:
            out[i].append(rewrite)
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _rewrite_existing(path: Path, needles, lines: LineFilter) -> Rewrite | None:
    """rewrite_file, None for a file gone since the tree was listed."""
    with contextlib.suppress(FileNotFoundError):
        return rewrite_file(path, needles, lines)
    return None


# A worker process's needles per tree and their LineFilters, built once by _start_worker.
_WORKER: dict[str, list] = {}
# A CSV or JSON-lines file at least this large is searched in pieces of about this size, each
# on its own in the pool, so that one large file does not leave the other workers idle.
PIECE_BYTES = 128 << 20
_GONE = "gone"  # a file removed since the tree was listed


def _start_worker(all_needles) -> None:
    _WORKER["needles"] = all_needles
    # built when a file of the tree comes: a worker builds only the automata its files need
    _WORKER["lines"] = [None] * len(all_needles)


def _worker_lines(i: int) -> LineFilter:
    if _WORKER["lines"][i] is None:
        _WORKER["lines"][i] = LineFilter(_WORKER["needles"][i])
    return _WORKER["lines"][i]


def _worker_rewrite(job: tuple[Path, int]) -> Rewrite | None:
    path, i = job
    return _rewrite_existing(path, _WORKER["needles"][i], _worker_lines(i))


def _worker_scan(job: tuple[Path, int, int, int]) -> _Scan | str | None:
    """The scan of one piece [start, end) of a text file (None: a CSV row over several lines)."""
    path, i, start, end = job
    scan = _csv_scan if path.suffix == ".csv" else _jsonl_scan
    try:
        with open(path, "rb") as src:
            return scan(src, _WORKER["needles"][i], _worker_lines(i), start, end)
    except FileNotFoundError:
        return _GONE


def _worker_write(job: tuple[Path, list[tuple[int, int]], dict[str, int], int]) -> Rewrite | None:
    path, drops, dropped, left = job
    with contextlib.suppress(FileNotFoundError):
        return _replace(path, _kept(lambda: open(path, "rb"), drops), dropped, left)
    return None


def _pieces(path: Path, size: int) -> list[tuple[int, int]]:
    """[start, end) spans of about PIECE_BYTES covering the file, each starting a line (one span
    for a small file, or one gone since the tree was listed: its worker finds it missing)."""
    starts = [0]
    if size > PIECE_BYTES:
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as src:
            while starts[-1] + PIECE_BYTES < size:
                src.seek(starts[-1] + PIECE_BYTES)
                nxt = src.tell() + len(src.readline())
                if nxt >= size:
                    break
                starts.append(nxt)
    return list(zip(starts, [*starts[1:], size], strict=True))


def _in_processes(
    jobs: list[tuple[Path, int]], sizes: list[int], all_needles, workers: int
) -> list[Rewrite | None]:
    """Every job's rewrite, the work shared among `workers` processes: large text files
    searched in pieces, then written once (or, a CSV row running over lines, rewritten whole)."""
    from orchestration.warehouse import process_pool

    tasks: list[tuple[int, Callable, tuple, int, int]] = []  # (bytes, fn, job, file, piece)
    scans: dict[int, list] = {}
    for j, ((path, i), size) in enumerate(zip(jobs, sizes, strict=True)):
        pieces = _pieces(path, size) if path.suffix in (".csv", ".jsonl") else []
        if len(pieces) > 1:
            scans[j] = [None] * len(pieces)
            tasks += [(e - s, _worker_scan, (path, i, s, e), j, k)
                      for k, (s, e) in enumerate(pieces)]  # fmt: skip
        else:
            tasks.append((size, _worker_rewrite, (path, i), j, -1))
    done: list[Rewrite | None] = [None] * len(jobs)
    left = {j: len(v) for j, v in scans.items()}
    with process_pool(min(workers, len(tasks)), _start_worker, (all_needles,)) as pool:
        # the largest first, so that no worker is left alone with a big piece at the end
        running = {pool.submit(fn, job): (j, k)
                   for _, fn, job, j, k in sorted(tasks, key=lambda t: -t[0])}  # fmt: skip
        while running:
            finished, _ = concurrent.futures.wait(running, return_when="FIRST_COMPLETED")
            for future in finished:
                j, k = running.pop(future)
                if k < 0:
                    done[j] = future.result()
                    continue
                scans[j][k] = future.result()
                left[j] -= 1
                if left[j]:
                    continue
                parts = scans[j]
                if _GONE in parts:
                    continue
                if any(p is None for p in parts):  # a CSV row over several lines
                    running[pool.submit(_worker_rewrite, jobs[j])] = (j, -1)
                    continue
                whole = _Scan.joined(parts)
                if whole.dropped:
                    job = (jobs[j][0], whole.drops, whole.dropped, whole.left)
                    running[pool.submit(_worker_write, job)] = (j, -1)
    return done
