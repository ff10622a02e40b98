"""The erasure's line filter (privacy/files.LineFilter) never skips a line that the cell-by-cell
comparison (identifiers.cell_matches) would erase, in CSV and in JSON lines, for identifiers
written every way a source writes them; and it does skip the lines that hold none, which is what
makes a file of tens of millions of rows cheap."""

import csv
import io
import json
import random

import pytest

from orchestration.privacy import files
from orchestration.privacy.identifiers import cell_matches

NEEDLES = {
    ("email", "gone.person@example.org"): {"R1"},
    ("phone", "+14155550199"): {"R1"},
    ("phone", "+448003569377"): {"R2"},
    ("shop_customer_id", "S9"): {"R1"},
    ("anonymous_id", "anon:42,x"): {"R2"},  # a boundary character inside: searched as a substring
    ("crm_contact_id", "12345"): {"R2"},
    ("email", "åsa@example.se"): {"R2"},
}
HITS = [" Gone.Person@Example.org ", "gone.person@example.org\t", "(415) 555-0199",
        "+1 415 555 0199", "001 415 555 0199", "0800 356 9377", "+44 800 356 9377", "S9", " S9",
        "anon:42,x", "12345", 12345, "åsa@example.se", "ÅSA@example.se"]  # fmt: skip
MISSES = ["keep@example.org", "S90", "s9x", "415 555 0100", "2026-11-21T10:00:00Z", "123456",
          "Gone", "anon:42", 4155550100, "São Paulo", "a\\b", "x" * 30, "", None, 3.5,
          "gone.person@example.org.uk", '{"referrer": "S9"}']  # fmt: skip


def _rows(seed: int, n: int) -> list[list]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        row = [rnd.choice(MISSES) for _ in range(5)]
        if rnd.random() < 0.3:
            row[rnd.randrange(5)] = rnd.choice(HITS)
        rows.append(row)
    return rows


def _hit(values) -> bool:
    return any(cell_matches(v, NEEDLES) for v in values)


def test_no_csv_or_json_line_holding_an_identifier_is_skipped():
    lines = files.LineFilter(NEEDLES)
    rows = _rows(7, 4000)
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows(
        [["" if v is None else v for v in r] for r in rows]
    )
    csv_lines = buf.getvalue().encode().splitlines()
    keys = ["a", "b", "c", "d", "e"]
    json_lines = [
        json.dumps(dict(zip(keys, r, strict=True)), ensure_ascii=i % 2 == 0).encode()
        for i, r in enumerate(rows)
    ]
    hits = skipped = 0
    for row, c_line, j_line in zip(rows, csv_lines, json_lines, strict=True):
        if _hit(row):
            hits += 1
            assert lines(c_line), c_line
            assert lines(j_line), j_line
        elif not lines(c_line) and not lines(j_line):
            skipped += 1
    assert hits > 800
    # the lines without an identifier are mostly skipped (not the non-ASCII, escaped or nested ones)
    assert skipped > 0.25 * (len(rows) - hits)


HEADER = ["a", "b", "c", "d", "e"]


def _csv_bytes(rows: list[list], terminator: str = "\n") -> bytes:
    """A CSV of HEADER and `rows` (None as an empty cell)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator=terminator)
    w.writerow(HEADER)
    w.writerows([["" if v is None else v for v in r] for r in rows])
    return buf.getvalue().encode()


def test_a_file_is_rewritten_the_same_with_the_filter_as_cell_by_cell():
    rows = _rows(11, 3000)
    header = HEADER
    data = _csv_bytes(rows)
    new, dropped, left = files.rewrite_data(".csv", data, NEEDLES)
    parsed = list(csv.reader(io.StringIO(data.decode(), newline="")))[1:]
    want_kept = [r for r in parsed if not _hit(r)]
    assert left == len(want_kept) and sum(dropped.values()) >= len(parsed) - len(want_kept)
    assert list(csv.reader(io.StringIO(new.decode(), newline="")))[1:] == want_kept
    jsonl = b"".join(json.dumps(dict(zip(header, r, strict=True))).encode() + b"\n" for r in rows)
    new, dropped, left = files.rewrite_data(".jsonl", jsonl, NEEDLES)
    want = [ln for ln in jsonl.splitlines(keepends=True) if not _hit(json.loads(ln).values())]
    assert new == b"".join(want) and left == len(want)


def test_a_quoted_cell_over_two_lines_is_compared_as_one_row():
    data = b'a,b\n"Line one\nS9",x\nkeep,y\n'
    new, dropped, left = files.rewrite_data(".csv", data, NEEDLES)
    assert dropped == {} and new is None  # "Line one\nS9" is not the id S9
    data = b'a,b\n"Line one\nmore",S9\nkeep,y\n'
    new, dropped, left = files.rewrite_data(".csv", data, NEEDLES)
    assert dropped == {"R1": 1} and new == b"a,b\nkeep,y\n" and left == 1


@pytest.mark.parametrize("batch_rows", [files.PARQUET_BATCH_ROWS, 97])
def test_a_parquet_file_keeps_exactly_the_rows_without_an_identifier(batch_rows, monkeypatch):
    """The rows kept are the same whether the file is read in one batch or in many (the rewrite
    reads and writes a batch at a time)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(files, "PARQUET_BATCH_ROWS", batch_rows)
    rows = _rows(13, 3000)
    text = [[None if v is None else str(v) for v in r] for r in rows]
    table = pa.table(
        {
            "a": pa.array([r[0] for r in text], pa.string()),
            "b": pa.array([r[1] for r in text], pa.large_string()),
            "n": pa.array([12345 if i % 97 == 0 else i for i in range(len(rows))], pa.int64()),
            "s": pa.array(
                [{"k": "S9"} if i % 101 == 0 else None for i in range(len(rows))],
                pa.struct([("k", pa.string())]),
            ),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=1000)
    new, _dropped, left = files.rewrite_data(".parquet", sink.getvalue().to_pybytes(), NEEDLES)
    want = [r for r in table.to_pylist() if not _hit(r.values()) and not _hit(
        (r["s"] or {}).values())]  # fmt: skip
    written = pq.read_table(pa.BufferReader(new))
    assert written.schema == table.schema
    got = written.to_pylist()
    assert got == want and left == len(want) and len(want) < len(rows) - 300


def test_the_whole_text_passes_find_the_lines_the_per_line_filter_finds(monkeypatch):
    """LineFilter.lines (numpy and Aho-Corasick over the whole text, chunk by chunk) picks the
    lines that calling the filter line by line picks, whatever the line endings (\\n, \\r\\n, a lone
    \\r, blank lines, no final newline) and wherever the chunks end."""
    lines = files.LineFilter(NEEDLES)
    rows = _rows(13, 3000)
    keys = ["a", "b", "c", "d", "e"]
    rnd = random.Random(5)
    parts = []
    for i, r in enumerate(rows):
        if i % 3:
            text = json.dumps(dict(zip(keys, r, strict=True)), ensure_ascii=i % 2 == 0)
        else:
            buf = io.StringIO(newline="")
            csv.writer(buf, lineterminator="").writerow(["" if v is None else v for v in r])
            text = buf.getvalue()
        parts.append(text.encode() + rnd.choice([b"\n", b"\r\n", b"\r", b"\n\n", b"\n \n"]))
    # a phone's last seven digits inside a longer run (separators between) are no phone's
    parts += [b'{"n": "55501990"}\n', b"x,4155550199 7\n", b"ref 0199-5550199-1\n"]
    data = b"".join(parts) + b"S9"  # a last line without a line break
    per_line = {i for i, line in enumerate(data.splitlines()) if lines(line)}
    assert len(per_line) > 500
    for chunk in (1 << 24, 4096, 97):  # one pass; many chunks, lines cut at every place
        monkeypatch.setattr(files, "_CHUNK", chunk)
        assert lines.lines(data) == per_line


def test_needles_in_neighbouring_cells_and_lines_each_mark_their_line():
    """Two needles with one boundary between them (neighbouring cells, or the end of a line and
    the start of the next) share that boundary in the whole-text search: each still marks its
    own line."""
    lines = files.LineFilter(NEEDLES)
    data = b"S9\nS9\n12345,S9\nkeep\nS9,12345\n12345\nkeep"
    per_line = {i for i, line in enumerate(data.splitlines()) if lines(line)}
    assert per_line == {0, 1, 2, 4, 5}
    assert lines.lines(data) == per_line


def test_kept_lines_are_copied_byte_for_byte():
    data = b'a,b\r\n"x, y",keep\r\nS9,gone\r\n  "q"  ,1\r\nlast,S9'
    new, dropped, left = files.rewrite_data(".csv", data, NEEDLES)
    assert new == b'a,b\r\n"x, y",keep\r\n  "q"  ,1\r\n' and dropped == {"R1": 2} and left == 2
    data = b'{"a": "S9"}\n\n{"a":  "keep"}\r\n{"b": "(415) 555-0199"}'
    new, dropped, left = files.rewrite_data(".jsonl", data, NEEDLES)
    assert new == b'\n{"a":  "keep"}\r\n' and dropped == {"R1": 2} and left == 1


def test_a_requested_phone_of_fewer_than_seven_digits_matches_no_line():
    """A junk phone in a request (too few digits to be any cell's last seven) is searched for
    nothing, in both the per-line and the whole-text filter, instead of failing the step."""
    lines = files.LineFilter({("phone", "+12"): {"R1"}, ("email", "a@b.org"): {"R1"}})
    data = b"x,123456789\ny,12\nz,a@b.org\n"
    assert lines.lines(data) == {i for i, ln in enumerate(data.splitlines()) if lines(ln)} == {2}


def _mixed_files():
    """A CSV (BOM, CRLF) and a JSON-lines text (some blank lines, no final newline) of rows."""
    rows = _rows(17, 2500)
    csv_bytes = b"\xef\xbb\xbf" + _csv_bytes(rows, "\r\n")
    json_lines = [json.dumps(dict(zip(HEADER, r, strict=True))).encode() for r in rows]
    jsonl_bytes = b"\n".join(
        ln + (b"\n" if i % 50 == 0 else b"") for i, ln in enumerate(json_lines)
    )
    return {".csv": csv_bytes, ".jsonl": jsonl_bytes}


def test_a_file_read_in_pieces_is_rewritten_as_when_read_whole(tmp_path, monkeypatch):
    """rewrite_file reads a text in pieces of whole lines; wherever the pieces end (and a line
    longer than a piece), the file it writes is the one rewrite_data writes from the whole text."""
    for suffix, data in _mixed_files().items():
        want, want_dropped, want_left = files.rewrite_data(suffix, data, NEEDLES)
        assert want is not None and want_left > 1000
        for chunk in (1 << 24, 4096, 97, 7):
            monkeypatch.setattr(files, "_CHUNK", chunk)
            path = tmp_path / f"f{chunk}{suffix}"
            path.write_bytes(data)
            done = files.rewrite_file(path, NEEDLES)
            assert path.read_bytes() == want, (suffix, chunk)
            assert done.rows_by_request == want_dropped and done.size == len(want)


def test_a_large_file_is_never_held_whole(tmp_path, monkeypatch):
    """The rewrite's Python memory stays near a few pieces, not the file's size."""
    import tracemalloc

    monkeypatch.setattr(files, "_CHUNK", 1 << 16)
    line = b'{"a": "keep@example.org", "b": "2026-11-21T10:00:00Z", "c": 12}\n'
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as fh:
        for i in range(300):
            fh.write(line * 1000)
            if i == 150:
                fh.write(b'{"a": "S9"}\n')
    size = path.stat().st_size
    tracemalloc.start()
    done = files.rewrite_file(path, NEEDLES)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert done.rows_by_request == {"R1": 1} and done.size == size - len(b'{"a": "S9"}\n')
    assert size > 19_000_000 and peak < size / 10, peak
