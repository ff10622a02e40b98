"""Batch gates on generated data: each defect class is injected into a generated landing file,
the gate blocks naming the rule and the column with masked samples, nothing is published, the rows
are accounted for; once the file is fixed the next run publishes the batch exactly once.

Runs stage -> gate (real GX) -> publish-if-passed on a small DuckDB, as the nightly job does
(tests/integration/test_rerun_and_gates.py shows the same on the whole job, activation included).
"""

import csv
import datetime as dt
import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from orchestration.contracts.model import source_contract
from orchestration.defs.quality.source_contracts import published_mismatches
from orchestration.ingest import landing
from orchestration.ingest.landing import count_records, scan_file
from orchestration.ingest.wap import publish_batch, stage_batch, undo_unfinished_publish
from orchestration.warehouse import connect
from tests.ingest_night import copy_landing, night

AS_OF = dt.date(2026, 11, 21)


def _copy(generated: Path, landing: Path, contract_id: str, day: dt.date = AS_OF) -> Path:
    return copy_landing(generated, landing, contract_id, day)


def _night(con, contract_id: str, landing: Path, run: str, as_of: dt.date = AS_OF):
    return night(con, contract_id, landing, run, as_of)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    from demo.generator import generate

    root = tmp_path_factory.mktemp("gen")
    generate(300, 5, AS_OF, root / "landing", root / "truth", progress=None)
    return root / "landing"


@pytest.fixture
def con(tmp_path: Path):
    c = connect(tmp_path / "wh.duckdb")
    yield c
    c.close()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header or list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue())


def _shift(ts: str, days: int) -> str:
    t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")) + dt.timedelta(days=days)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _published(con, contract_id: str) -> int:
    return con.execute(
        "select count(*) from audit.ingestion_audit where contract_id = ?", [contract_id]
    ).fetchone()[0]


def _assert_blocked(con, contract_id, batch, gate, rule, column, *words):
    assert not gate.passed
    hits = [d for d in gate.details if d.rule == rule]
    assert hits, f"expected {rule}, got {gate.failures}"
    assert column in hits[0].column
    for word in words:
        assert word in hits[0].message, hits[0].message
    assert _published(con, contract_id) == 0, "a blocked batch is never published"
    assert con.execute(f"select count(*) from raw.{contract_id}").fetchone()[0] == 0
    # accounting holds on the blocked batch: every record counted in the files is somewhere
    assert batch.files_rows == batch.staged_rows_by_file
    assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated
    return hits[0]


def _assert_fixed_once(con, contract_id, landing, as_of=AS_OF):
    batch, gate, published = _night(con, contract_id, landing, "fixed", as_of)
    assert gate.passed, gate.failures
    assert published
    again, gate2, published2 = _night(con, contract_id, landing, "rerun", as_of)
    assert gate2.passed and not published2 and again.batch_id is None
    rows = con.execute(
        "select count(*), sum(extracted) from audit.ingestion_audit where contract_id = ? "
        "and as_of = ?",
        [contract_id, as_of],
    ).fetchone()
    files = [Path(f) for f in batch.files]
    assert rows == (1, sum(count_records(f) for f in files)), "published exactly once"
    assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated
    return batch


def test_a_publish_stopped_before_its_audit_row_is_undone_and_published_whole(
    con, tmp_path, generated
):
    """An engine without transactions (Spark) can stop a publish halfway: rows in raw and the
    files in the cursor, no audit row. The next stage removes them and publishes the batch whole,
    once (its rows are not taken for already published)."""
    landing = tmp_path / "landing"
    _copy(generated, landing, "email__engagement")
    first, gate, published = _night(con, "email__engagement", landing, "first")
    assert gate.passed and published and first.loaded > 0
    # published: the staging copy of the batch is emptied (its rows live in raw and quarantine)
    for suffix in ("__clean", "__verdicts"):
        table = f"staging.batch__email__engagement{suffix}"
        assert con.execute(f"select count(*) from {table}").fetchone() == (0,)
    raw = "select count(*) from raw.email__engagement"
    loaded = con.execute(raw).fetchone()[0]
    con.execute("delete from audit.ingestion_audit where batch_id = ?", [first.batch_id])
    contract = source_contract("email__engagement")
    assert undo_unfinished_publish(con, contract) == [first.batch_id]
    assert con.execute(raw).fetchone()[0] == 0
    assert con.execute("select count(*) from audit.ingestion_files").fetchone()[0] == 0
    again, gate, published = _night(con, "email__engagement", landing, "again")
    assert gate.passed and published
    assert (again.batch_id, again.loaded, again.quarantined) == (
        first.batch_id, first.loaded, first.quarantined
    )  # fmt: skip
    assert con.execute(raw).fetchone()[0] == loaded
    assert undo_unfinished_publish(con, contract) == []


# --- schema drift ---------------------------------------------------------------------------


def test_renamed_column_names_both_and_masks_the_unknown_one(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "crm__contacts")
    original = path.read_text()
    emails = {r["email"] for r in _csv(path) if r["email"]}
    path.write_text(original.replace(",email,", ",email_address,", 1))
    batch, gate, _ = _night(con, "crm__contacts", landing, "r1")
    hit = _assert_blocked(
        con, "crm__contacts", batch, gate, "schema.renamed_column", "email",
        "renamed", "email_address", "email -> email_address",
    )  # fmt: skip
    assert hit.samples and "email_address" in hit.samples[0]
    dumped = json.dumps([d.samples for d in gate.details]) + json.dumps(gate.failures)
    assert not any(e in dumped for e in emails), "an unknown (renamed) column is masked too"
    path.write_text(original)
    _assert_fixed_once(con, "crm__contacts", landing)


def test_missing_column_is_blocked_naming_it(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    original = path.read_text()
    _write_jsonl(path, [{k: v for k, v in r.items() if k != "currency"} for r in _jsonl(path)])
    batch, gate, _ = _night(con, "shop__orders", landing, "r1")
    _assert_blocked(
        con, "shop__orders", batch, gate, "schema.missing_column", "currency", "missing column"
    )
    path.write_text(original)
    _assert_fixed_once(con, "shop__orders", landing)


def test_retyped_json_column_numbers_arrive_as_objects(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    original = path.read_text()
    rows = _jsonl(path)
    for r in rows:
        r["total_amount"] = {"amount": r["total_amount"], "currency": r["currency"]}
    _write_jsonl(path, rows)
    batch, gate, _ = _night(con, "shop__orders", landing, "r1")
    hit = _assert_blocked(
        con, "shop__orders", batch, gate, "schema.retyped_column", "total_amount",
        "retyped column", "OBJECT", "is not a number",
    )  # fmt: skip
    assert hit.samples and "amount" in hit.samples[0]["total_amount"]
    path.write_text(original)
    _assert_fixed_once(con, "shop__orders", landing)


def test_retyped_parquet_column_timestamps_arrive_as_epoch_integers(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "consent__events")
    original = pq.read_table(path)
    epoch = pc.cast(
        pc.strptime(original["captured_at"], format="%Y-%m-%dT%H:%M:%SZ", unit="ms"), pa.int64()
    )
    pq.write_table(original.set_column(original.schema.get_field_index("captured_at"),
                                       "captured_at", epoch), path)  # fmt: skip
    batch, gate, _ = _night(con, "consent__events", landing, "r1")
    hit = _assert_blocked(
        con, "consent__events", batch, gate, "schema.retyped_column", "captured_at",
        "BIGINT", "is not a timestamp",
    )  # fmt: skip
    contact_points = set(original["contact_point"].to_pylist())
    assert not any(str(s.get("contact_point")) in contact_points for s in hit.samples)
    pq.write_table(original, path)
    _assert_fixed_once(con, "consent__events", landing)


def test_retyped_csv_column_by_its_values(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "crm__contacts")
    original = path.read_text()
    rows = _csv(path)
    for r in rows:  # the export switched date_of_birth to DD/MM/YYYY
        if r["date_of_birth"]:
            y, m, d = r["date_of_birth"].split("-")
            r["date_of_birth"] = f"{d}/{m}/{y}"
    _write_csv(path, rows)
    batch, gate, _ = _night(con, "crm__contacts", landing, "r1")
    hit = _assert_blocked(
        con, "crm__contacts", batch, gate, "schema.retyped_column", "date_of_birth",
        "is not a date", "present values are not a valid date",
    )  # fmt: skip
    assert all(s["date_of_birth"].startswith("***") for s in hit.samples), "dob is PII: masked"
    path.write_text(original)
    _assert_fixed_once(con, "crm__contacts", landing)


# --- duplicates, future timestamps, stale source --------------------------------------------


def test_duplicates_beyond_max_duplicate_share(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    again = path.with_name("part-00001.jsonl")  # a re-sent slice of the export
    _write_jsonl(again, _jsonl(path)[:40])
    batch, gate, _ = _night(con, "shop__orders", landing, "r1")
    hit = _assert_blocked(
        con, "shop__orders", batch, gate, "duplicates.max_share", "order_id",
        "duplicates", "maxDuplicateShare",
    )  # fmt: skip
    assert batch.deduplicated_in_batch >= 40 and hit.samples
    again.unlink()
    fixed = _assert_fixed_once(con, "shop__orders", landing)
    assert fixed.duplicate_share < 0.05


def test_future_timestamps_block_beyond_the_share_and_are_quarantined_below(
    con, tmp_path, generated
):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    original = path.read_text()
    rows = _jsonl(path)
    for r in rows[:3]:
        r["updated_at"] = "2026-11-24T08:00:00Z"  # as_of + 3 days: a time-zone bug upstream
    _write_jsonl(path, rows)
    batch, gate, _ = _night(con, "shop__orders", landing, "r1")
    _assert_blocked(
        con, "shop__orders", batch, gate, "timestamps.future", "updated_at",
        "future timestamps", "2026-11-22T02:00:00", "maxFutureShare",
    )  # fmt: skip
    assert batch.quarantined_by_rule.get("updated_at.not_future") == 3
    path.write_text(original)
    _assert_fixed_once(con, "shop__orders", landing)

    # web events tolerate a few wrong device clocks (maxFutureShare 0.001): quarantined, not blocking
    web = _copy(generated, landing, "web__events")
    rows = _jsonl(web)
    rows[0]["occurred_at"] = "2026-12-01T00:00:00Z"
    _write_jsonl(web, rows)
    batch, gate, published = _night(con, "web__events", landing, "r2")
    assert gate.passed and published
    rule, reason = con.execute(
        "select _rule_id, _reason from quarantine.web__events where event_id = ?",
        [rows[0]["event_id"]],
    ).fetchone()
    assert rule == "occurred_at.not_future" and "after the as_of day" in reason


def test_stale_source_is_blocked_naming_the_ordering_column(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    original = path.read_text()
    rows = _jsonl(path)
    for r in rows:  # the export is stuck on a snapshot from two months ago
        r["updated_at"] = _shift(r["updated_at"], -60)
    _write_jsonl(path, rows)
    batch, gate, _ = _night(con, "shop__orders", landing, "r1")
    hit = _assert_blocked(
        con, "shop__orders", batch, gate, "freshness.stale", "updated_at",
        "stale source", "maxStaleDays 30",
    )  # fmt: skip
    assert hit.samples
    path.write_text(original)
    _assert_fixed_once(con, "shop__orders", landing)


# --- volume drop ----------------------------------------------------------------------------


def test_volume_drop_against_the_trailing_median(con, tmp_path, generated):
    landing = tmp_path / "landing"
    days = [AS_OF - dt.timedelta(days=n) for n in (4, 3, 2)]
    for i, day in enumerate(days):  # the same export, as it looked on each earlier day
        path = _copy(generated, landing, "shop__orders", day)
        back = (day - AS_OF).days
        _write_jsonl(
            path,
            [
                r | {c: _shift(r[c], back) for c in ("ordered_at", "updated_at")}
                for r in _jsonl(path)
            ],
        )
        batch, gate, published = _night(con, "shop__orders", landing, f"d{i}", day)
        assert gate.passed and published, gate.failures
        if i < 3:
            assert any("earlier as_of" in n for n in gate.notes)  # too little history: a note
    # a quiet day (nothing delivered) is not a volume drop
    batch, gate, published = _night(
        con, "shop__orders", landing, "quiet", AS_OF - dt.timedelta(days=1)
    )
    assert gate.passed and not published and any("quiet day" in n for n in gate.notes)
    # today's export is cut short: 30% of the usual rows
    path = _copy(generated, landing, "shop__orders")
    original = path.read_text()
    rows = _jsonl(path)
    _write_jsonl(path, rows[: len(rows) * 3 // 10])
    batch, gate, _ = _night(con, "shop__orders", landing, "r1")
    assert not gate.passed
    hit = next(d for d in gate.details if d.rule == "volume.drop")
    assert "volume drop" in hit.message and f"median {len(rows)}" in hit.message
    assert _published(con, "shop__orders") == 3
    assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated
    path.write_text(original)
    _assert_fixed_once(con, "shop__orders", landing)


# --- row accounting -------------------------------------------------------------------------


def test_row_accounting_fails_when_the_loader_skips_a_line(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "crm__contacts")
    original = path.read_text()
    # An export banner above the header: DuckDB's CSV sniffer skips it silently, the
    # independent reader counts one more record than the loader staged.
    path.write_text("exported by crm on 2026-11-21\n" + original)
    batch, gate, _ = _night(con, "crm__contacts", landing, "r1")
    assert not gate.passed
    hits = [d for d in gate.details if d.rule == "accounting.rows"]
    assert any(str(path) in d.message and "loader staged" in d.message for d in hits)
    assert any(d.message.startswith("row accounting: extracted") for d in hits)
    assert batch.extracted == batch.staged + 1
    assert _published(con, "crm__contacts") == 0
    path.write_text(original)
    _assert_fixed_once(con, "crm__contacts", landing)


def test_published_rows_are_checked_against_the_staged_plan(con, tmp_path, generated):
    landing = tmp_path / "landing"
    _copy(generated, landing, "shop__orders")
    contract = source_contract("shop__orders")
    batch, _gate, published = _night(con, "shop__orders", landing, "r1")
    assert published
    assert published_mismatches(con, contract, batch)[0] == []
    # a publish that lost a row (simulated by deleting one) is caught after the fact
    con.execute(
        "delete from raw.shop__orders where order_id = (select min(order_id) from raw.shop__orders)"
    )
    problems, counts = published_mismatches(con, contract, batch)
    assert counts["raw_rows"] == batch.loaded - 1
    assert any("raw.shop__orders holds" in p for p in problems)


def test_a_file_changed_after_staging_is_not_published(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    contract = source_contract("shop__orders")
    batch = stage_batch(con, contract, landing, AS_OF, "r1")
    path.write_text(path.read_text() + path.read_text().splitlines()[0] + "\n")
    with pytest.raises(Exception, match="changed or removed since it was staged"):
        publish_batch(con, contract, batch, "r1", landing)
    assert _published(con, "shop__orders") == 0


def test_a_same_size_rewrite_after_staging_is_not_published(con, tmp_path, generated):
    """Publish trusts a file's stat signature only while it is the one taken when the file was
    read: a rewrite in place keeping size (and even mtime) changes its ctime, and is refused."""
    import os
    import time

    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    old = time.time() - 3600  # written long before the read: not racy, the signature is kept
    os.utime(path, (old, old))
    contract = source_contract("shop__orders")
    batch = stage_batch(con, contract, landing, AS_OF, "r1")
    assert batch.file_signature, "a file written an hour ago has a trusted stat signature"
    data = path.read_bytes()
    time.sleep(0.02)  # past the filesystem's timestamp tick
    path.write_bytes(data.replace(b"2026-", b"2025-", 1))  # same size, other content
    os.utime(path, (old, old))  # mtime put back, as `touch -r` or a careless copy would
    with pytest.raises(Exception, match="changed or removed since it was staged"):
        publish_batch(con, contract, batch, "r1", landing)
    assert _published(con, "shop__orders") == 0


def test_a_touched_but_unchanged_file_is_published_after_hashing_it_again(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    contract = source_contract("shop__orders")
    batch = stage_batch(con, contract, landing, AS_OF, "r1")
    path.touch()  # a new mtime, the same bytes: the SHA-256 decides
    assert publish_batch(con, contract, batch, "r1", landing)
    assert _published(con, "shop__orders") == 1


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 22])
def test_scan_file_counts_json_lines_as_count_records_and_finds_bad_utf8(
    tmp_path, monkeypatch, chunk
):
    """The single read of a file (hash, JSON-lines count, UTF-8 check) counts exactly what the
    line-by-line count_records counts, whatever the chunk boundaries, and reports the first
    non-UTF-8 line and byte offset as the old separate check did."""
    monkeypatch.setattr(landing, "_SCAN_CHUNK", chunk)
    j = tmp_path / "a.jsonl"
    for text in [
        b'{"a": 1}\n\n  \n{"a": 2}\n',
        b'{"a": 1}\r\n\t\r\n {"a": 2}\n\x0b\x0c\n{"a": 3}',  # no final newline
        b"\n\n\n",
        b' {"a": 1}\n\x0c{"a": 2}\n',  # records starting with whitespace
        b'{"a": "\xc3\xa9"}\n' * 7,
    ]:
        j.write_bytes(text)
        scanned = scan_file(j)
        assert scanned.records == count_records(j), text
        assert scanned.encoding_error is None
    j.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    assert scan_file(j).encoding_error.startswith(f"{j}: line 2 (byte offset 19): not valid UTF-8")
    j.write_bytes(b"\xff\xfe{\x00")
    assert "the file is UTF-16" in scan_file(j).encoding_error


def test_count_records_is_independent_of_duckdb(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text('a,b\n1,"x\ny"\n\n,\n3,4\n')  # quoted line break, empty line, commas only
    assert count_records(f) == 3
    assert duckdb.sql(f"select count(*) from read_csv('{f}', header=true)").fetchall() == [(3,)]
    j = tmp_path / "a.jsonl"
    j.write_text('{"a": 1}\n\n  \n{"a": 2}\n')
    assert count_records(j) == 2
