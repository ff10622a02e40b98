"""Bad landing files, each through the path the nightly uses (stage -> gate -> publish if passed):
a file-level defect (0 bytes, not UTF-8, wrong CSV delimiter, corrupt Parquet) fails the stage
step with a LandingFileError naming the file and line, before anything is published; a malformed
JSON line is quarantined with a reason naming file:line while the rest of its file loads; a CSV
with only its header is an accepted, counted delivery of zero rows. No message holds PII.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.contracts.model import source_contract
from orchestration.ingest.landing import INVALID_JSON_RULE, LandingFileError, count_records
from orchestration.warehouse import connect
from tests.ingest_night import copy_landing, night

AS_OF = dt.date(2026, 11, 21)


def _copy(generated: Path, landing: Path, contract_id: str, day: dt.date = AS_OF) -> Path:
    return copy_landing(generated, landing, contract_id, day)


def _night(con, contract_id: str, landing: Path, run: str):
    return night(con, contract_id, landing, run, AS_OF)


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


def _nothing_published(con, contract_id: str) -> None:
    contract = source_contract(contract_id)
    for sql in (
        f"select count(*) from raw.{contract.id}",
        f"select count(*) from quarantine.{contract.id}",
        "select count(*) from audit.ingestion_audit",
        "select count(*) from audit.ingestion_files",
    ):
        assert con.execute(sql).fetchone()[0] == 0, sql


def _pii(path: Path) -> set[str]:
    """Emails and phones in a generated file (what no message may contain)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        rows = [json.loads(line) for line in text.splitlines() if _is_json(line)]
    return {
        str(r[k])
        for r in rows
        for k in ("email", "phone", "mobile_phone")
        if r.get(k) not in (None, "")
    }


# --- not UTF-8 --------------------------------------------------------------------------------


@pytest.mark.parametrize("contract_id", ["crm__contacts", "shop__orders"])
def test_non_utf8_file_fails_naming_file_line_byte_offset_and_encoding(
    con, tmp_path, generated, contract_id
):
    landing = tmp_path / "landing"
    # a good file of the day before in the same batch: nothing of it may be published either
    other = _copy(generated, landing, contract_id, AS_OF - dt.timedelta(days=1))
    path = _copy(generated, landing, contract_id)
    lines = path.read_bytes().splitlines(keepends=True)
    # line 6 gets a cp1252 "é" (0xE9) where UTF-8 needs two bytes
    offset = sum(len(line) for line in lines[:5]) + 3
    lines[5] = lines[5][:3] + b"\xe9" + lines[5][3:]
    path.write_bytes(b"".join(lines))

    with pytest.raises(LandingFileError) as err:
        _night(con, contract_id, landing, "r1")
    msg = str(err.value)
    assert str(path) in msg and "line 6" in msg and f"byte offset {offset}" in msg, msg
    assert "0xE9" in msg and "UTF-8" in msg, msg
    assert err.value.__cause__ is None, "no chained loader internals"
    assert not any(v in msg for v in _pii(path))
    _nothing_published(con, contract_id)

    # re-exported as UTF-8 (and the other file, a copy, removed: it only duplicates), it lands
    path.write_bytes(b"".join(lines).replace(b"\xe9", "é".encode()))
    other.unlink()
    batch, gate, published = _night(con, contract_id, landing, "r2")
    assert gate.passed and published, gate.failures
    assert batch.files == [str(path)]


def test_utf16_file_is_named_as_utf16(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "crm__contacts")
    path.write_bytes(path.read_text().encode("utf-16"))
    with pytest.raises(LandingFileError, match=r"line 1 \(byte 0\): the file is UTF-16"):
        _night(con, "crm__contacts", landing, "r1")
    _nothing_published(con, "crm__contacts")


# --- truncated / invalid JSON line --------------------------------------------------------------


def test_truncated_json_lines_are_quarantined_naming_file_and_line(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    lines = path.read_text().splitlines(keepends=True)
    n = len(lines)
    lines.insert(2, "\n")  # a blank line: not a record, but it shifts line numbers
    lines[4] = lines[4][: len(lines[4]) // 2] + "\n"  # line 5 cut mid-record
    lines[-1] = lines[-1][:-25]  # the last line cut, no newline (an upload that stopped)
    path.write_text("".join(lines))
    good = [json.loads(line) for line in lines if line.strip() and _is_json(line)]
    assert len(good) == n - 2

    batch, gate, published = _night(con, "shop__orders", landing, "r1")
    assert gate.passed and published, gate.failures
    assert batch.quarantined_by_rule.get(INVALID_JSON_RULE) == 2
    assert batch.extracted == n == count_records(path)
    assert batch.files_rows == batch.staged_rows_by_file == {str(path): n}
    assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated
    rows = con.execute(
        "select _reason, _source_row, _failed_rules from quarantine.shop__orders "
        "where _rule_id = ? order by _source_row",
        [INVALID_JSON_RULE],
    ).fetchall()
    assert [r[0] for r in rows] == [
        f"{path}:5: not valid JSON (a truncated or malformed line)",
        f"{path}:{n + 1}: not valid JSON (a truncated or malformed line)",
    ]
    assert [r[1] for r in rows] == [4, n]  # record numbers (blank lines are not records)
    assert all(r[2] == [INVALID_JSON_RULE] for r in rows)
    # every good order is in raw or deduplicated/quarantined by its own rules: nothing lost
    ids = {r["order_id"] for r in good}
    raw = {r[0] for r in con.execute("select order_id from raw.shop__orders").fetchall()}
    quarantined = {
        r[0] for r in con.execute("select order_id from quarantine.shop__orders").fetchall()
    }
    assert ids == raw | (quarantined - {None})
    again, _, published2 = _night(con, "shop__orders", landing, "r2")
    assert again.batch_id is None and not published2


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_many_malformed_json_lines_block_the_batch_at_the_quarantine_share(
    con, tmp_path, generated
):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    lines = path.read_text().splitlines(keepends=True)
    for i in range(0, len(lines), 10):  # 10 % of the lines: over maxQuarantineShare (5 %)
        lines[i] = lines[i][:30] + "\n"
    path.write_text("".join(lines))
    batch, gate, published = _night(con, "shop__orders", landing, "r1")
    assert not gate.passed and not published
    assert any(d.rule == "quarantine.max_share" for d in gate.details), gate.failures
    assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated
    _nothing_published(con, "shop__orders")


# --- wrong delimiter ----------------------------------------------------------------------------


def test_semicolon_csv_fails_naming_file_line_header_and_expected_columns(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "crm__contacts")
    rows = list(csv.reader(path.open(newline="")))
    buf = io.StringIO()
    csv.writer(buf, delimiter=";", lineterminator="\n").writerows(rows)
    path.write_text(buf.getvalue())

    with pytest.raises(LandingFileError) as err:
        _night(con, "crm__contacts", landing, "r1")
    msg = str(err.value)
    contract = source_contract("crm__contacts")
    assert msg.startswith(f"{path}: line 1: the header has 1 column(s) when split by ','"), msg
    assert ";".join(rows[0]) in msg  # the header seen
    assert ", ".join(contract.column_names) in msg  # the columns expected
    assert "delimiter is likely wrong" in msg and "';'" in msg
    assert not any(v in msg for v in _pii(path))
    _nothing_published(con, "crm__contacts")


# --- empty file, header only --------------------------------------------------------------------


@pytest.mark.parametrize("contract_id", ["crm__contacts", "shop__orders", "consent__events"])
def test_empty_file_fails_naming_the_file_and_nothing_is_published(
    con, tmp_path, generated, contract_id
):
    landing = tmp_path / "landing"
    _copy(generated, landing, contract_id, AS_OF - dt.timedelta(days=1))
    path = _copy(generated, landing, contract_id)
    path.write_bytes(b"")
    with pytest.raises(LandingFileError) as err:
        _night(con, contract_id, landing, "r1")
    assert str(err.value).startswith(f"{path}: empty file (0 bytes"), str(err.value)
    _nothing_published(con, contract_id)


def test_truncated_parquet_fails_naming_the_file(con, tmp_path, generated):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "consent__events")
    assert path.suffix == ".parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(LandingFileError, match=f"^{path}: cannot be read as parquet"):
        _night(con, "consent__events", landing, "r1")
    _nothing_published(con, "consent__events")


@pytest.mark.parametrize("newline", ["\n", ""])
def test_header_only_csv_is_an_accepted_delivery_of_zero_rows(con, tmp_path, generated, newline):
    landing = tmp_path / "landing"
    path = _copy(generated, landing, "crm__contacts")
    path.write_text(path.read_text().splitlines()[0] + newline)
    batch, gate, published = _night(con, "crm__contacts", landing, "r1")
    assert gate.passed and published, gate.failures
    assert (batch.extracted, batch.loaded, batch.quarantined, batch.deduplicated) == (0, 0, 0, 0)
    audit = con.execute(
        "select files, extracted, loaded from audit.ingestion_audit where contract_id = ?",
        ["crm__contacts"],
    ).fetchall()
    assert audit == [(1, 0, 0)], "counted: one file, zero rows"
    again, _, published2 = _night(con, "crm__contacts", landing, "r2")
    assert again.batch_id is None and not published2


# --- the message reaches the Dagster step failure -----------------------------------------------


def test_bad_file_fails_the_staged_asset_with_the_message_and_no_loader_internals(
    tmp_path, generated
):
    from orchestration.defs.ingestion.factory import build_source_defs
    from orchestration.defs.resources import Warehouse

    landing = tmp_path / "landing"
    path = _copy(generated, landing, "shop__orders")
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"', b"\xff", 1)
    path.write_bytes(b"".join(lines))
    staged = next(
        a
        for a in build_source_defs("shop").assets
        if a.key == dg.AssetKey(["staged", "shop", "orders"])
    )
    warehouse = tmp_path / "wh.duckdb"
    result = dg.materialize(
        [staged],
        partition_key=AS_OF.isoformat(),
        resources={"warehouse": Warehouse(path=str(warehouse), landing_dir=str(landing))},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    # a Failure naming the file and line, with nothing of the loader chained below it
    error = failure.step_failure_data.error
    assert error.cls_name == "Failure"
    assert f"{path}: line 3 (byte offset " in error.message, error.message
    assert error.cause is None, "DuckDB/pyarrow internals are not chained into the failure"
    assert not any(v in error.message for v in _pii(path))
    with duckdb.connect(str(warehouse), read_only=True) as c:
        assert c.execute("select count(*) from raw.shop__orders").fetchone()[0] == 0


@pytest.mark.parametrize("contract_id", ["crm__contacts", "consent__events", "web__events"])
def test_a_good_file_reports_no_schema_drift(generated, con, tmp_path, contract_id):
    """The `dt=` folder is layout, not data: no CSV or Parquet file reports a `dt` column."""
    landing = tmp_path / "landing"
    _copy(generated, landing, contract_id)
    batch, gate, published = _night(con, contract_id, landing, "good")
    assert batch.extra_columns == {} and batch.missing_columns == {}
    assert gate.passed and published
