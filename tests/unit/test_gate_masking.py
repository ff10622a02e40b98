"""Masking at the source of the batch gate's evidence (issue 14, core 5 leftovers).

- landing.mask_file_row (the rows a schema-drift failure shows as they are in the file) masks by
  allow-list (masking.mask_row): before, every non-PII column passed raw, so a canary e-mail in
  `city` or a birth date in `account_id` relied on a later edge to mask it again.
- A file whose first line is data (no header): DuckDB takes its values for column names, and
  the gate put them unmasked in the schema-drift message, the failure's columns, its sample rows'
  keys and the `extra_columns` check metadata. Unknown names that are not plausible identifiers
  are masked, and every unknown name of a file whose first line looks like data.

The canaries are those of tests/unit/test_masking.py, planted as a header line.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from orchestration.contracts.model import source_contract
from orchestration.ingest.gate import shown_column_names
from orchestration.ingest.landing import mask_file_row
from orchestration.warehouse import connect
from tests.ingest_night import copy_landing, night
from tests.unit.test_masking import AS_OF, BIRTH, CANARY, EMAIL, NAME, PHONE, generated  # noqa: F401

CONTACTS = "crm__contacts"
TS = f"{AS_OF.isoformat()}T09:00:00Z"
# a contact's line as the CRM exports it, canaries in its PII columns (first and family name,
# e-mail, phone, birth date, street)
DATA_LINE = (
    f"C9999995,A9999995,Quillon,Zabrowski,{EMAIL},{PHONE},,{BIRTH},1364 Maple Dr,,New York,"
    f"10037,NY,US,America/New_York,{TS},{TS},false"
)


def _leak(text: str) -> str | None:
    hit = CANARY.search(text)
    return None if hit is None else text[max(hit.start() - 80, 0) : hit.end() + 40]


@pytest.fixture
def con(tmp_path: Path):
    c = connect(tmp_path / "wh.duckdb")
    yield c
    c.close()


# --- mask_file_row: allow-list at the source ----------------------------------------------


def test_a_file_row_masks_pii_in_non_pii_columns_at_the_source():
    c = source_contract(CONTACTS)
    row = dict.fromkeys(c.column_names, "") | {
        "contact_id": "C9999992",
        "account_id": BIRTH,
        "city": EMAIL,
        "region": PHONE,
        "country_code": "US",
        "time_zone": PHONE,
        "created_at": TS,
        "is_deleted": "false",
        "email": EMAIL,
        "e_mail_2": EMAIL,  # a column the contract does not know
    }
    masked = mask_file_row(c, row)
    assert not _leak(json.dumps(masked)), masked
    # plausible public values and a clean e-mail's hint stay
    assert masked["contact_id"] == "C9999992" and masked["country_code"] == "US"
    assert masked["created_at"] == TS and masked["is_deleted"] == "false"
    assert masked["email"] == "c***@***.org"
    assert all(isinstance(v, str) for v in masked.values())  # as text, nulls as ""


def test_a_json_lines_row_keeps_the_shape_of_an_object_not_its_values():
    c = source_contract("shop__orders")
    masked = mask_file_row(
        c, {"order_id": "O1", "status": {"note": EMAIL}, "total_amount": 12.5, "currency": None}
    )
    assert not _leak(json.dumps(masked)), masked
    assert masked["total_amount"] == "12.5" and masked["currency"] == ""


def test_schema_drift_samples_are_masked_when_staged(con, tmp_path, generated):  # noqa: F811
    """A renamed column makes the stage step keep sample rows of the file: a canary e-mail in
    `city` and a birth date in `account_id` are masked there already."""
    landing = tmp_path / "landing"
    path = copy_landing(generated, landing, CONTACTS, AS_OF)
    lines = path.read_text().splitlines()
    header = lines[0].replace("time_zone", "tz")
    planted = f"C9999992,{BIRTH},Q,Z,,,,,,,{EMAIL},,,US,,{TS},{TS},false"
    path.write_text("\n".join([header, planted, *lines[1:]]) + "\n")
    batch, gate, published = night(con, CONTACTS, landing, "run-1", AS_OF)
    assert not gate.passed and not published
    samples = batch.samples[f"schema:{path}"]
    assert any(r.get("contact_id") == "C9999992" for r in samples)
    assert not _leak(json.dumps(samples)), samples


# --- unknown column names -----------------------------------------------------------------


def test_plausible_identifiers_show_and_value_like_names_are_masked():
    c = source_contract(CONTACTS)
    missing = ["email", "time_zone"]
    names = ["e_mail", "Time Zone", "tz-name", "tz.name", "(tz)", "[tz]"]
    assert shown_column_names(c, missing, names) == {
        "e_mail": "e_mail",
        "Time Zone": "Time Zone",
        "tz-name": "t***",  # not an identifier: masked, a clean name's hint kept
        "tz.name": "t***#2",  # masked names are kept apart
        "(tz)": "***",
        "[tz]": "***#2",
    }


def test_every_unknown_name_of_a_data_line_is_masked():
    c = source_contract(CONTACTS)
    # a value that is surely one (an e-mail, a phone, a leading digit) marks the line as data
    names = ["Quillon", "Zabrowski", EMAIL]
    shown = shown_column_names(c, ["first_name", "last_name", "email"], names)
    assert shown == {"Quillon": "Q***", "Zabrowski": "Z***", EMAIL: "c***@***.org"}
    # no contract column at all: the first line is data, however plain its values
    shown = shown_column_names(c, list(c.column_names), ["C9999995", "Quillon", "false"])
    assert not _leak(json.dumps(shown)) and "Quillon" not in shown.values()
    assert len(set(shown.values())) == 3


def _headerless(generated: Path, landing: Path) -> Path:  # noqa: F811
    """A contacts file whose header line was lost: its first line is a contact with canaries."""
    path = copy_landing(generated, landing, CONTACTS, AS_OF)
    body = path.read_text().splitlines()[1:]
    path.write_text("\n".join([DATA_LINE, *body]) + "\n")
    return path


def test_a_data_line_as_header_leaves_no_pii_in_the_gate(con, tmp_path, generated):  # noqa: F811
    path = _headerless(generated, tmp_path / "landing")
    batch, gate, published = night(con, CONTACTS, tmp_path / "landing", "run-1", AS_OF)
    assert not gate.passed and not published
    rules = {d.rule for d in gate.details}
    assert rules & {"schema.renamed_column", "schema.missing_column"}, gate.failures
    assert batch.extra_columns[str(path)], "the data line's values were taken for names"
    for where, text in [
        ("failure messages", json.dumps(gate.failures)),
        ("failure details", json.dumps(gate.details_json())),
        ("failure samples", json.dumps([d.samples for d in gate.details])),
        ("extra_columns", json.dumps(batch.extra_columns)),
        ("notes", json.dumps(gate.notes)),
    ]:
        assert not _leak(text), f"canary PII in the {where}: {_leak(text)}"
    assert "first line data" in " ".join(gate.failures)


def test_a_data_line_as_header_leaves_no_pii_in_check_metadata_log_or_report(
    tmp_path,
    monkeypatch,
    generated,  # noqa: F811
):
    from dagster._serdes import serialize_value

    from orchestration.defs.ingestion.factory import build_source_defs
    from orchestration.defs.quality.source_contracts import build_contract_gate
    from orchestration.defs.resources import Warehouse

    reports = tmp_path / "reports"
    monkeypatch.setenv("C360_REPORTS_DIR", str(reports))
    landing = tmp_path / "landing"
    path = _headerless(generated, landing)
    assert _leak(path.read_text()), "the search can fail: the canaries are in the file"
    staged = next(
        a
        for a in build_source_defs("crm").assets
        if a.key == dg.AssetKey(["staged", "crm", "contacts"])
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [staged, build_contract_gate(source_contract(CONTACTS))],
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
    assert not evaluation.passed
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert metadata["extra_columns"][str(path)], "the search space holds the names"
    logged = "\n".join(serialize_value(r) for r in instance.all_logs(result.run_id))
    html = "".join(p.read_text() for p in reports.rglob("*.html"))
    for where, text in [
        ("event log", logged),
        ("check metadata", json.dumps(metadata, default=str)),
        ("check description", evaluation.description or ""),
        ("quality report", html),
    ]:
        assert not _leak(text), f"canary PII in the {where}: {_leak(text)}"
