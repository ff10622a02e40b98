"""Landing files as text (CSV or JSON lines), written with Arrow kernels, and what a generator
run returns. Shared by the default generator (demo/generator.py) and the second noise profile
(demo/noise_second.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class GenerateResult:
    landing_dir: Path
    truth_dir: Path
    rows: dict[str, int]  # rows written per contract id, e.g. "crm__contacts"
    persons: int
    seconds: float


def concat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation; a null part makes the result null."""
    return pc.binary_join_element_wise(*parts, "")


_CHUNK = 250_000


def _payload(lines: pa.Array) -> pa.Buffer | None:
    """The UTF-8 bytes of a non-null string array, concatenated (zero-copy)."""
    if len(lines) == 0:
        return None
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, stop = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return lines.buffers()[2].slice(int(start), int(stop - start))


def _csv_column(col: pa.Array) -> pa.Array:
    """Quote only values that need it (comma, quote, line break); null → empty field."""
    needs = pc.match_substring_regex(col, '[",\r\n]')
    if pc.any(needs).as_py():
        quoted = concat('"', pc.replace_substring(col, '"', '""'), '"')
        col = pc.if_else(pc.fill_null(needs, False), quoted, col)
    return pc.fill_null(col, "")


def _json_column(col: pa.Array) -> pa.Array:
    """A JSON string literal per value (our values hold no control characters); null → null."""
    if pc.any(pc.match_substring_regex(col, r'["\\]')).as_py():
        col = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
    return pc.fill_null(concat('"', col, '"'), "null")


def write_text(path: Path, table: pa.Table, fmt: str) -> None:
    """CSV (header, minimal quoting) or JSON lines, built with Arrow kernels in chunks."""
    names = table.column_names
    with path.open("wb") as fh:
        if fmt == "csv":
            fh.write((",".join(names) + "\n").encode())
        for start in range(0, table.num_rows, _CHUNK):
            part = table.slice(start, _CHUNK)
            cols = [part.column(i).combine_chunks() for i in range(len(names))]
            pieces: list[pa.Array | str] = []
            for i, (name, col) in enumerate(zip(names, cols, strict=True)):
                if fmt == "csv":
                    pieces += [",", _csv_column(col)] if i else [_csv_column(col)]
                else:
                    pieces += [("," if i else "{") + json.dumps(name) + ":", _json_column(col)]
            pieces.append("\n" if fmt == "csv" else "}\n")
            data = _payload(concat(*pieces))
            if data is not None:
                fh.write(data)
