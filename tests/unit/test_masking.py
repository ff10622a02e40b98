"""Masking is by allow-list (issue 14, Core 5): a value keeps a hint only when it is a clean
e-mail, phone or name of the kind its column holds; everything else is fully masked.

The last test plants canary PII (a unique e-mail, phone, name and birth date) in a ragged CSV
line, in an oversized field and in the wrong columns of a generated CRM file, runs the staged
asset and its blocking `meets_contract` check through Dagster, and greps every event record of
the run (serialized: what the UI shows, asset check metadata included) and the data-quality
report. Before the allow-list, `mask_value` kept everything after the e-mail's last dot as its
"TLD" (phone, name and birth date of a line read as one value) and non-PII columns passed as
they were (an e-mail in `region`, a 60 KB `city`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import dagster as dg
import pytest

from orchestration.contracts.masking import mask_row, mask_value, row_is_ragged
from orchestration.contracts.model import source_contract
from tests.ingest_night import copy_landing

AS_OF = dt.date(2026, 11, 21)

EMAIL, PHONE = "canary.mask.q9z@example.org", "+1 415 555 0177"
NAME, BIRTH = "Quillon Zabrowski", "1961-07-29"
# any rendering of the canaries: the e-mail's local part and domain, the phone's national
# digits, the family name, the birth date in any order of its parts
CANARY = re.compile(
    r"canary\.mask|q9z|415\D{0,3}555\D{0,3}0177|Zabrowski|1961\D?07\D?29|29\D07\D1961",
    re.IGNORECASE,
)


# --- mask_value: the allow-list -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "masked"),
    [
        ("jane.doe@x.com", "email", "j***@***.com"),
        ("Jane.Doe@Mail.Example.ORG", "email", "J***@***.org"),
        ("jane.doe@x.com", "auto", "j***@***.com"),
        ("+1 415 555 0142", "phone", "***42"),
        ("(628) 634-5677", "phone", "***77"),
        ("Jane", "name", "J***"),
        ("Anne-Marie O'Neil", "name", "A***"),
        ("Sam", "auto", "S***"),
        # not clean, or not of the column's kind: fully masked
        (f"{EMAIL},{PHONE},{NAME},{BIRTH}", "email", "***[72 chars]"),
        (f"{EMAIL},{PHONE},{NAME},{BIRTH}", "auto", "***[72 chars]"),
        (f"{EMAIL} {PHONE}", "email", "***"),
        (EMAIL + ";x@y.com", "email", "***"),
        ("a@b@c.com", "email", "***"),
        ("jane@example.c0m", "email", "***"),
        ("jane@example.toolongtoplausiblybeatldreally", "email", "***"),
        ("jane@example", "email", "***"),
        (PHONE, "email", "***"),
        (EMAIL, "phone", "***"),
        (BIRTH, "phone", "***"),
        ("12/03/1990", "other", "***"),
        (BIRTH, "auto", "***"),
        (NAME, "email", "***"),
        ("123", "phone", "***"),
        ("1234567890123456789", "phone", "***"),
        ("Jane 2nd", "name", "***"),
        ("A Very Long Name With Many Words", "name", "***"),
        ("1364 Maple Dr", "other", "***"),
        ("Jane", "other", "***"),
        ("x" * 65, "auto", "***[65 chars]"),
        (EMAIL + "x" * 300, "email", "***[327 chars]"),
        (None, "email", ""),
        ("", "name", ""),
    ],
)
def test_mask_value_keeps_a_hint_only_of_a_clean_value_of_its_kind(value, kind, masked):
    assert mask_value(value, kind) == masked


def test_the_tld_is_letters_only_never_the_rest_of_a_ragged_line():
    """The reported leak: everything after the last dot was kept as the 'TLD'."""
    line = f"C9,,Q,Z,x@example.org,{PHONE},{NAME},{BIRTH}"
    for kind in ("email", "auto", "name", "phone", "other"):
        assert not CANARY.search(mask_value(line, kind)), kind
    assert mask_value(f"x@example.{BIRTH}") == "***"


def test_masking_again_leaves_a_masked_value_as_it_is():
    for value, kind in [(EMAIL, "email"), (PHONE, "phone"), (NAME, "name"), (BIRTH, "other")]:
        once = mask_value(value, kind)
        assert mask_value(once, kind) == once and mask_value(once) == once


# --- mask_row: by the contract ------------------------------------------------------------


def _contact(**values) -> dict:
    row = dict.fromkeys(source_contract("crm__contacts").column_names)
    row |= {
        "contact_id": "C9000001",
        "country_code": "US",
        "city": "New York",
        "time_zone": "America/New_York",
        "created_at": "2026-11-21T09:00:00Z",
        "updated_at": "2026-11-21T09:00:00Z",
        "is_deleted": "false",
    }
    return row | values | {"_source_file": "/landing/part-00000.csv", "_source_row": 7}


def test_a_clean_row_keeps_its_hints_and_its_public_values():
    c = source_contract("crm__contacts")
    row = _contact(first_name="Jane", email="jane@x.com", phone=PHONE, date_of_birth=BIRTH)
    masked = mask_row(c, row)
    assert masked["first_name"] == "J***" and masked["email"] == "j***@***.com"
    assert masked["phone"] == "***77" and masked["date_of_birth"] == "***"
    for col in ("contact_id", "country_code", "city", "time_zone", "created_at", "is_deleted"):
        assert masked[col] == row[col], col
    assert masked["_source_file"] == row["_source_file"] and masked["_source_row"] == 7


def test_pii_in_the_wrong_column_is_fully_masked():
    c = source_contract("crm__contacts")
    row = _contact(
        email=PHONE,  # PII columns holding another kind
        phone=BIRTH,
        first_name=EMAIL,
        mobile_phone=NAME,
        region=EMAIL,  # non-PII columns holding PII
        time_zone=PHONE,
        account_id=BIRTH,
        country_code="Zabrowski",  # breaks the column's own pattern rule
    )
    masked = mask_row(c, row)
    assert not CANARY.search(json.dumps(masked)), masked
    assert masked["contact_id"] == "C9000001", "a plausible id still shows"


def test_an_oversized_field_is_masked_with_its_length():
    c = source_contract("crm__contacts")
    big = (f"{NAME} {EMAIL} {PHONE} {BIRTH} " * 2000).strip()
    masked = mask_row(c, _contact(city=big, address_line2=big))
    assert masked["city"] == f"***[{len(big)} chars]" and masked["address_line2"].startswith("***")
    assert not CANARY.search(json.dumps(masked))


def test_every_value_of_a_ragged_row_is_masked_as_pii():
    c = source_contract("crm__contacts")
    # an unbalanced quote swallowed the next fields into first_name; the rest shifted left
    swallowed = _contact(first_name=f"Q,Z,{EMAIL},{PHONE}", city=NAME, region="Zabrowski")
    assert row_is_ragged(c, swallowed)
    assert not CANARY.search(json.dumps(mask_row(c, swallowed)))
    # a line read as one value, in a column named after the whole header
    header = ",".join(c.column_names)
    one = {header: f"C9,,Quillon,Zabrowski,{EMAIL},{PHONE},,{BIRTH}", "_source_row": 1}
    assert row_is_ragged(c, one)
    assert mask_row(c, one)[header] == f"***[{len(one[header])} chars]"
    # a field past the header, named by the reader
    assert row_is_ragged(c, _contact(column18=NAME))
    assert not row_is_ragged(c, _contact(first_name="Jane"))


def test_a_json_value_in_a_typed_column_shows_its_keys_not_its_values():
    c = source_contract("shop__orders")
    row = {
        "order_id": "O1",
        "total_amount": json.dumps({"amount": 12.5, "currency": "USD", "payer": EMAIL}),
        "_source_file": "/landing/part-00000.jsonl",
    }
    masked = mask_row(c, row)
    assert masked["order_id"] == "O1"
    shown = json.loads(masked["total_amount"])
    assert set(shown) == {"amount", "currency", "payer"} and shown["amount"] == 12.5
    assert not CANARY.search(masked["total_amount"])


# --- the canaries through Dagster: event log, check metadata, quality report ---------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    from demo.generator import generate

    root = tmp_path_factory.mktemp("gen")
    generate(300, 5, AS_OF, root / "landing", root / "truth", progress=None)
    return root / "landing"


def _plant(path: Path, case: str) -> None:
    lines = path.read_text().splitlines()
    header, body = lines[0], lines[1:]
    ts = f"{AS_OF.isoformat()}T09:00:00Z"
    if case == "ragged":
        # a short line: DuckDB then reads every line of the file as one value
        planted = [f"C9999991,,Quillon,Zabrowski,{EMAIL},{PHONE},,{BIRTH}"]
    else:
        big = (f"{NAME} {EMAIL} {PHONE} {BIRTH} " * 1500).strip()  # ~90 KB
        planted = [
            # wrong columns: the e-mail in region, the phone in time_zone, the birth date in
            # account_id, the name in country_code (a pattern failure: quarantined)
            f"C9999992,{BIRTH},Q,Z,,,,,,,Paris,,{EMAIL},{NAME},{PHONE},{ts},{ts},false",
            # an oversized non-PII field, quarantined by its bad country code
            f"C9999993,,Q,Z,,,,,,,{big},,,{NAME},,{ts},{ts},false",
            # PII columns holding another kind of PII, quarantined by the e-mail rule
            f"C9999994,,{EMAIL},{PHONE},{NAME},{BIRTH},{EMAIL},{PHONE},,,,,,US,,{ts},{ts},false",
        ]
    path.write_text("\n".join([header, *planted, *body]) + "\n")


@pytest.mark.parametrize("case", ["ragged", "wrong_columns_and_oversized"])
def test_canary_pii_stays_out_of_the_event_log_check_metadata_and_report(
    tmp_path, monkeypatch, generated, case
):
    from dagster._serdes import serialize_value

    from orchestration.defs.ingestion.factory import build_source_defs
    from orchestration.defs.quality.source_contracts import build_contract_gate
    from orchestration.defs.resources import Warehouse

    reports = tmp_path / "reports"
    monkeypatch.setenv("C360_REPORTS_DIR", str(reports))
    landing = tmp_path / "landing"
    path = copy_landing(generated, landing, "crm__contacts", AS_OF)
    _plant(path, case)
    assert CANARY.search(path.read_text()), "the search can fail: the canaries are in the file"

    contract = source_contract("crm__contacts")
    staged = next(
        a
        for a in build_source_defs("crm").assets
        if a.key == dg.AssetKey(["staged", "crm", "contacts"])
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [staged, build_contract_gate(contract)],
        partition_key=AS_OF.isoformat(),
        resources={
            "warehouse": Warehouse(path=str(tmp_path / "wh.duckdb"), landing_dir=str(landing))
        },
        instance=instance,
        raise_on_error=False,
    )
    evaluation = next(
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    )
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    md = str(metadata["failure_samples_masked"]) + str(metadata["sample_rows_masked"])
    html = "".join(p.read_text() for p in reports.rglob("*.html"))
    # the planted rows are really shown (masked): the search space holds them
    if case == "ragged":
        assert not evaluation.passed
        assert "schema.missing_column" in json.dumps(metadata["failure_details"]) or (
            "schema.renamed_column" in json.dumps(metadata["failure_details"])
        )
        assert "***" in md and "***" in html
    else:
        for contact in ("C9999992", "C9999993", "C9999994"):
            assert contact in md and contact in html, contact
        assert metadata["quarantined"] >= 3
    records = instance.all_logs(result.run_id)
    assert records
    logged = "\n".join(serialize_value(r) for r in records)
    for where, text in [
        ("event log", logged),
        ("check metadata", json.dumps(metadata, default=str)),
        ("check description", evaluation.description or ""),
        ("quality report", html),
    ]:
        hit = CANARY.search(text)
        assert not hit, (
            f"canary PII in the {where}: ...{text[max(hit.start() - 80, 0) : hit.end() + 40]}"
        )
