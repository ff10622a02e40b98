"""Landing paths are literal, through the path the nightly uses (stage -> gate -> publish):

- a file name holding `[ ] * ?` is read as that file, never as a DuckDB glob (a new `part[1].csv`
  beside a published `part1.csv` once read `part1.csv`, "deduplicated" every row and was
  recorded as published with its own rows never landed);
- a symbolic link leaving the landing folder is refused by name, reported, and the rest of the
  batch lands; a link within the landing folder is read;
- an invalid `dt=` folder is refused by name while the other folders of the source load;
- the same bytes under a new path are recorded once: not read again, not loaded twice;
- a CSV value over 128 KiB loads (a record over MAX_CSV_LINE_BYTES fails naming file and line);
- a UTF-8 byte order mark opening a CSV or JSON-lines file costs no record.

Every batch keeps the accounting: extracted = loaded + quarantined + deduplicated.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from orchestration.contracts.model import source_contract
from orchestration.ingest import landing
from orchestration.ingest.landing import INVALID_JSON_RULE, LandingFileError, glob_escaped
from orchestration.warehouse import connect
from tests.ingest_night import copy_landing, night

AS_OF = dt.date(2026, 11, 21)
FORMATS = {"crm__contacts": ".csv", "shop__orders": ".jsonl", "consent__events": ".parquet"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    from demo.generator import generate

    root = tmp_path_factory.mktemp("gen")
    generate(300, 7, AS_OF, root / "landing", root / "truth", progress=None)
    return root / "landing"


@pytest.fixture
def con(tmp_path: Path):
    c = connect(tmp_path / "wh.duckdb")
    yield c
    c.close()


def _night(con, contract_id: str, landing_dir: Path, run: str):
    batch, gate, published = night(con, contract_id, landing_dir, run, AS_OF)
    assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated
    return batch, gate, published


def _split(src: Path, a: Path, b: Path) -> None:
    """Write every other record of `src` to `a`, the rest to `b` (same format): both halves span
    the whole time range, so neither is stale."""
    if src.suffix == ".csv":
        rows = list(csv.reader(src.open(newline="", encoding="utf-8")))
        header, body = rows[0], rows[1:]
        for dest, part in ((a, body[0::2]), (b, body[1::2])):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([header, *part])
            dest.write_text(buf.getvalue(), encoding="utf-8")
    elif src.suffix == ".jsonl":
        lines = [line for line in src.read_text().splitlines(keepends=True) if line.strip()]
        a.write_text("".join(lines[0::2]))
        b.write_text("".join(lines[1::2]))
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(src)
        n = table.num_rows
        pq.write_table(table.take(list(range(0, n, 2))), a)
        pq.write_table(table.take(list(range(1, n, 2))), b)


def _rows_from(con, contract_id: str, path: Path) -> tuple[int, int]:
    """(raw rows, quarantine rows) whose _source_file is `path`."""
    return tuple(
        con.execute(
            f"select count(*) from {schema}.{contract_id} where _source_file = ?", [str(path)]
        ).fetchone()[0]
        for schema in ("raw", "quarantine")
    )


def _recorded(con, path: Path) -> int:
    return con.execute(
        "select count(*) from audit.ingestion_files where path = ?", [str(path)]
    ).fetchone()[0]


# --- glob characters in a file name -----------------------------------------------------------


@pytest.mark.parametrize(
    ("contract_id", "name"),
    [
        ("crm__contacts", "part[1]"),
        ("crm__contacts", "part*"),
        ("crm__contacts", "part?"),
        ("shop__orders", "part[1]"),
        ("consent__events", "part[1]"),
    ],
)
def test_a_glob_named_file_beside_a_published_similar_name_lands_its_own_rows(
    con, tmp_path, generated, contract_id, name
):
    landing_dir = tmp_path / "landing"
    src = copy_landing(generated, landing_dir, contract_id, AS_OF)
    first, second = src.with_name("part1" + src.suffix), src.with_name(name + src.suffix)
    _split(src, first, tmp_path / ("held" + src.suffix))
    src.unlink()
    batch1, gate1, published1 = _night(con, contract_id, landing_dir, "r1")
    assert gate1.passed and published1, gate1.failures
    assert batch1.files == [str(first)]

    # the second half arrives under a name DuckDB would read as a pattern matching `part1`
    shutil.move(tmp_path / ("held" + src.suffix), second)
    batch2, gate2, published2 = _night(con, contract_id, landing_dir, "r2")
    assert gate2.passed and published2, gate2.failures
    assert batch2.files == [str(second)]
    assert batch2.staged_rows_by_file == batch2.files_rows == {str(second): batch2.extracted}
    assert batch2.deduplicated_in_raw == 0, "its rows were read from part1 (a glob)"
    raw, quarantined = _rows_from(con, contract_id, second)
    assert raw == batch2.loaded > 0 and quarantined == batch2.quarantined
    # the first file's rows are there once, not twice
    assert _rows_from(con, contract_id, first) == (batch1.loaded, batch1.quarantined)
    assert _recorded(con, second) == 1


def test_a_glob_named_file_reads_itself_when_links_cannot_be_made(
    con, tmp_path, generated, monkeypatch
):
    """Without symbolic links (e.g. Windows without the privilege) the name is glob-escaped."""

    def no_links(self, target, target_is_directory=False):
        raise OSError("symbolic links not permitted")

    landing_dir = tmp_path / "landing"
    src = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    first, second = src.with_name("part1.csv"), src.with_name("part[1].csv")
    _split(src, first, second)
    src.unlink()
    monkeypatch.setattr(Path, "symlink_to", no_links)
    batch, gate, published = _night(con, "crm__contacts", landing_dir, "r1")
    assert gate.passed and published, gate.failures
    assert batch.staged_rows_by_file == batch.files_rows
    for path in (first, second):
        ids = {r["contact_id"] for r in csv.DictReader(path.open(newline="", encoding="utf-8"))}
        got = con.execute(
            "select contact_id from raw.crm__contacts where _source_file = ? union all "
            "select contact_id from quarantine.crm__contacts where _source_file = ?",
            [str(path), str(path)],
        ).fetchall()
        assert got and {r[0] for r in got} <= ids, f"rows of another file staged as {path}"


def test_glob_escaped_names_match_only_themselves(tmp_path):
    c = duckdb.connect()
    (tmp_path / "part1.csv").write_text("a\nfrom part1\n")
    names = ["part[1].csv", "part*.csv", "part?.csv", "p[a-z]rt].csv", "x[[]].csv"]
    for name in names:
        (tmp_path / name).write_text(f"a\nfrom {name}\n")
    for name in names:
        got = c.execute(
            f"select a from read_csv('{glob_escaped(tmp_path / name)}', header=true)"
        ).fetchall()
        assert got == [(f"from {name}",)], name


# --- symbolic links ---------------------------------------------------------------------------


def test_a_link_leaving_the_landing_folder_is_refused_by_name_and_the_rest_lands(
    con, tmp_path, generated
):
    landing_dir = tmp_path / "landing"
    good = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "passwd.csv"
    _split(good, tmp_path / "keep.csv", secret)
    shutil.move(tmp_path / "keep.csv", good)
    link = good.with_name("evil.csv")
    link.symlink_to(secret)
    folder_link = good.parent / "more"  # a linked folder leaving the landing folder too
    folder_link.symlink_to(outside, target_is_directory=True)

    batch, gate, published = _night(con, "crm__contacts", landing_dir, "r1")
    assert gate.passed and published, gate.failures
    assert batch.files == [str(good)]
    assert set(batch.refused) == {str(link), str(folder_link)}
    assert "outside the landing folder" in batch.refused[str(link)]
    assert str(secret) in batch.refused[str(link)]
    assert any(n.startswith(f"accounting: refused {link}:") for n in gate.notes), gate.notes
    # nothing of the outside file: not staged, not counted, not recorded
    assert sum(_rows_from(con, "crm__contacts", link)) == 0
    assert con.execute("select count(*) from audit.ingestion_files").fetchone()[0] == 1
    # reported with the batch's audit outcome (the raw asset's metadata shows it)
    outcome = con.execute(
        "select outcome from audit.ingestion_batches where run_id = 'r1'"
    ).fetchone()[0]
    assert json.loads(outcome)["refused"] == batch.refused
    # still refused (and reported) the next night; nothing is published again
    again, gate2, published2 = _night(con, "crm__contacts", landing_dir, "r2")
    assert again.batch_id is None and not published2
    assert set(again.refused) == {str(link), str(folder_link)}
    assert any(str(link) in n for n in gate2.notes)


def test_a_link_within_the_landing_folder_is_read(con, tmp_path, generated):
    landing_dir = tmp_path / "landing"
    src = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    shared = landing_dir / "_shared"
    shared.mkdir()
    target = shared / "contacts.csv"
    shutil.move(src, target)
    link = src.with_name("linked.csv")
    link.symlink_to(os.path.relpath(target, link.parent))
    batch, gate, published = _night(con, "crm__contacts", landing_dir, "r1")
    assert gate.passed and published, gate.failures
    assert batch.files == [str(link)] and batch.refused == {}
    assert sum(_rows_from(con, "crm__contacts", link)) == batch.extracted - batch.deduplicated > 0


def test_a_broken_link_is_refused_by_name(con, tmp_path, generated):
    landing_dir = tmp_path / "landing"
    good = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    link = good.with_name("gone.csv")
    link.symlink_to(good.with_name("missing.csv"))
    batch, gate, published = _night(con, "crm__contacts", landing_dir, "r1")
    assert gate.passed and published
    assert batch.files == [str(good)]
    assert "broken symbolic link" in batch.refused[str(link)]


# --- invalid dt= folders ----------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["dt=2026-02-30", "dt=2026-13-01", "dt=yesterday"])
def test_an_invalid_dt_folder_is_refused_by_name_while_other_folders_load(
    con, tmp_path, generated, folder
):
    landing_dir = tmp_path / "landing"
    good = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    bad_dir = good.parent.parent / folder
    bad_dir.mkdir()
    _split(good, tmp_path / "keep.csv", bad_dir / "part-00000.csv")
    shutil.move(tmp_path / "keep.csv", good)

    batch, gate, published = _night(con, "crm__contacts", landing_dir, "r1")
    assert gate.passed and published, gate.failures
    assert batch.files == [str(good)]
    assert list(batch.refused) == [str(bad_dir)]
    assert folder in batch.refused[str(bad_dir)] and "not a valid" in batch.refused[str(bad_dir)]
    assert any(str(bad_dir) in n for n in gate.notes)
    assert sum(_rows_from(con, "crm__contacts", good)) > 0

    # renamed to its delivery date, its rows land the next night, once
    fixed = good.parent.parent / f"dt={(AS_OF - dt.timedelta(days=1)).isoformat()}"
    bad_dir.rename(fixed)
    batch2, gate2, published2 = _night(con, "crm__contacts", landing_dir, "r2")
    assert gate2.passed and published2, gate2.failures
    assert batch2.files == [str(fixed / "part-00000.csv")] and batch2.refused == {}


# --- the same bytes under a new path ----------------------------------------------------------


@pytest.mark.parametrize("contract_id", ["crm__contacts", "shop__orders"])
def test_a_published_file_copied_to_a_new_path_is_recorded_once_and_not_read_again(
    con, tmp_path, generated, contract_id
):
    landing_dir = tmp_path / "landing"
    original = copy_landing(generated, landing_dir, contract_id, AS_OF)
    _, gate1, published1 = _night(con, contract_id, landing_dir, "r1")
    assert gate1.passed and published1
    raw_before = con.execute(f"select count(*) from raw.{contract_id}").fetchone()[0]

    copy = original.parent / f"copy-of-{original.name}"
    shutil.copy(original, copy)
    batch2, gate2, published2 = _night(con, contract_id, landing_dir, "r2")
    assert gate2.passed and published2, gate2.failures
    assert batch2.files == [str(copy)] and batch2.same_content == {str(copy): str(original)}
    assert batch2.files_rows == {} and batch2.extracted == batch2.staged == 0, "not read again"
    assert any(str(copy) in n and "same bytes" in n for n in gate2.notes)
    assert _recorded(con, copy) == 1
    assert con.execute(f"select count(*) from raw.{contract_id}").fetchone()[0] == raw_before

    # the next night, nothing new: the copy is not re-read every night
    batch3, _, published3 = _night(con, contract_id, landing_dir, "r3")
    assert batch3.batch_id is None and batch3.files == [] and not published3
    assert _recorded(con, copy) == 1


def test_two_new_files_with_the_same_bytes_are_read_once(con, tmp_path, generated):
    landing_dir = tmp_path / "landing"
    original = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    copy = original.parent.parent / f"dt={(AS_OF - dt.timedelta(days=1)).isoformat()}" / "b.csv"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    batch, gate, published = _night(con, "crm__contacts", landing_dir, "r1")
    # discovery order is path order: the dt=<day before> copy comes first and is the one read
    assert gate.passed and published, gate.failures
    assert batch.same_content == {str(original): str(copy)}
    assert list(batch.files_rows) == [str(copy)]
    assert batch.extracted == batch.staged == batch.files_rows[str(copy)], "staged once"
    assert _recorded(con, copy) == _recorded(con, original) == 1
    assert sum(_rows_from(con, "crm__contacts", original)) == 0
    assert sum(_rows_from(con, "crm__contacts", copy)) == batch.loaded + batch.quarantined


# --- oversized values -------------------------------------------------------------------------


def _with_long_value(path: Path, row: int, size: int) -> str:
    """Put a `size`-character address line (crm contacts CSV: address_line1; shop orders JSON
    lines: shipping_address_line1) into record `row` (1-based); returns the value."""
    value = "Long Street " + "x" * (size - 12)
    if path.suffix == ".csv":
        rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
        rows[row][rows[0].index("address_line1")] = value
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        path.write_text(buf.getvalue(), encoding="utf-8")
    else:
        lines = path.read_text().splitlines()
        rec = json.loads(lines[row - 1])
        rec["shipping_address_line1"] = value
        lines[row - 1] = json.dumps(rec)
        path.write_text("\n".join(lines) + "\n")
    return value


def _count_value(con, contract_id: str, column: str, value: str) -> int:
    return sum(
        con.execute(
            f"select count(*) from {schema}.{contract_id} where {column} = ?", [value]
        ).fetchone()[0]
        for schema in ("raw", "quarantine")
    )


def test_a_csv_value_over_128_kib_loads(con, tmp_path, generated):
    landing_dir = tmp_path / "landing"
    path = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    value = _with_long_value(path, 3, 200 * 1024)
    batch, gate, published = _night(con, "crm__contacts", landing_dir, "r1")
    assert batch.files_rows == batch.staged_rows_by_file
    assert gate.passed and published, gate.failures
    assert _count_value(con, "crm__contacts", "address_line1", value) == 1


def test_a_json_value_over_128_kib_loads(con, tmp_path, generated):
    landing_dir = tmp_path / "landing"
    path = copy_landing(generated, landing_dir, "shop__orders", AS_OF)
    value = _with_long_value(path, 3, 200 * 1024)
    batch, gate, published = _night(con, "shop__orders", landing_dir, "r1")
    assert batch.files_rows == batch.staged_rows_by_file
    assert gate.passed and published, gate.failures
    assert _count_value(con, "shop__orders", "shipping_address_line1", value) == 1


@pytest.mark.parametrize("how", ["one value", "many values"])
def test_a_csv_record_over_the_line_limit_fails_naming_file_and_line(
    con, tmp_path, generated, monkeypatch, how
):
    """Over MAX_CSV_LINE_BYTES (lowered here to keep the test small): the independent count
    (one value over the limit) or the loader (a line over it, each value under) refuses the file
    naming it and the record's first line, without the value (it may hold personal data)."""
    limit = 256 * 1024
    monkeypatch.setattr(landing, "MAX_CSV_LINE_BYTES", limit)
    landing_dir = tmp_path / "landing"
    path = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    # record 4 starts on line 5 (no quoted line breaks before it in the generated file)
    if how == "one value":
        rows[4][rows[0].index("address_line1")] = "y" * (limit + 10)
    else:
        for col in ("address_line1", "address_line2", "city"):
            rows[4][rows[0].index(col)] = "y" * (limit // 2)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    with pytest.raises(LandingFileError) as err:
        _night(con, "crm__contacts", landing_dir, "r1")
    msg = str(err.value)
    assert msg.startswith(f"{path}: line 5: cannot be read as csv: a record longer than "), msg
    assert "yyyy" not in msg and len(msg) < 1000
    assert err.value.__cause__ is None
    assert con.execute("select count(*) from audit.ingestion_files").fetchone()[0] == 0


# --- byte order marks -------------------------------------------------------------------------


@pytest.mark.parametrize("contract_id", ["crm__contacts", "shop__orders"])
def test_a_file_starting_with_a_utf8_bom_loses_no_record(con, tmp_path, generated, contract_id):
    landing_dir = tmp_path / "landing"
    path = copy_landing(generated, landing_dir, contract_id, AS_OF)
    plain = copy_landing(generated, tmp_path / "plain", contract_id, AS_OF)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())

    c = connect(tmp_path / "plain.duckdb")
    try:
        reference, _, _ = _night(c, contract_id, tmp_path / "plain", "p")
        want = _published(c, contract_id, plain)
    finally:
        c.close()
    batch, gate, published = _night(con, contract_id, landing_dir, "r1")
    assert gate.passed and published, gate.failures
    assert INVALID_JSON_RULE not in batch.quarantined_by_rule
    assert batch.missing_columns == batch.extra_columns == {}
    assert (batch.extracted, batch.loaded, batch.quarantined, batch.deduplicated) == (
        reference.extracted,
        reference.loaded,
        reference.quarantined,
        reference.deduplicated,
    )
    assert _published(con, contract_id, path) == want


def _published(con, contract_id: str, path: Path) -> list[tuple]:
    """Raw and quarantine rows of `path`, contract columns only (order-independent)."""
    cols = ", ".join(f'"{c}"' for c in source_contract(contract_id).column_names)
    rows = []
    for schema in ("raw", "quarantine"):
        rows += con.execute(
            f"select {cols} from {schema}.{contract_id} where _source_file = ?", [str(path)]
        ).fetchall()
    return sorted(rows, key=repr)


# --- published files are stat'ed, not read, on later nights ------------------------------------


def test_a_published_file_is_only_stated_later_and_read_again_once_changed(
    con, tmp_path, generated, monkeypatch
):
    """Its stat signature is recorded when it is read; a later night that finds the same
    signature takes the recorded SHA-256 without reading it. Rewritten in place with other bytes
    of the same size and its modification time put back (as a copy tool may), its ctime moved:
    read again, and the new version lands."""
    import time

    landing_dir = tmp_path / "landing"
    original = copy_landing(generated, landing_dir, "crm__contacts", AS_OF)
    an_hour_ago = time.time() - 3600
    os.utime(original, (an_hour_ago, an_hour_ago))  # not written around its read (racy)
    _, gate1, published1 = _night(con, "crm__contacts", landing_dir, "r1")
    assert gate1.passed and published1
    sha = landing.file_sha256(original)
    assert con.execute("select path, sha256 from audit.landing_file_signatures").fetchall() == [
        (str(original), sha)
    ]

    read: list[Path] = []
    scan = landing.scan_file
    monkeypatch.setattr(landing, "scan_file", lambda path: read.append(path) or scan(path))
    batch2, _, published2 = _night(con, "crm__contacts", landing_dir, "r2")
    assert read == [] and batch2.files == [] and not published2

    text = original.read_text(encoding="utf-8")
    header, first, rest = text.split("\n", 2)
    changed = first.replace(first.split(",")[2], first.split(",")[2][::-1], 1)
    assert len(changed) == len(first) and changed != first
    original.write_text(f"{header}\n{changed}\n{rest}", encoding="utf-8")
    os.utime(original, (an_hour_ago, an_hour_ago))
    batch3, gate3, published3 = _night(con, "crm__contacts", landing_dir, "r3")
    assert read == [original] and batch3.files == [str(original)]
    assert gate3.passed and published3
    assert (
        con.execute(
            "select sha256 from audit.landing_file_signatures where path = ?", [str(original)]
        ).fetchall()
        == [(landing.file_sha256(original),)]
        != [(sha,)]
    )
