"""Nothing lost for a bad optional field (issue 15, core 4): a field declared `onInvalid: nullify`
turns its rules into warnings that null the value; the row lands (and can be matched), the nulled
values are counted per rule and sampled (masked) in the batch outcome and the quality report."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from orchestration.contracts import rules_python
from orchestration.contracts.model import ContractError, load_contract, source_contract
from orchestration.contracts.rules_sql import failed_rules_sql, trimmed_columns_sql
from orchestration.ingest.report import BatchReport
from orchestration.warehouse import connect
from tests.ingest_night import night

AS_OF = dt.date(2026, 11, 21)
BAD_DOB = "1945-04-93"


def _contact(**over) -> dict:
    row = {
        "contact_id": "C1", "account_id": None, "first_name": "Ada", "last_name": "Lovelace",
        "email": None, "phone": None, "mobile_phone": None, "date_of_birth": "1945-04-03",
        "address_line1": "1 Main St", "address_line2": None, "city": "Springfield",
        "postal_code": "62701", "region": None, "country_code": "US", "time_zone": None,
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-11-01T10:00:00Z",
        "is_deleted": "false",
    }  # fmt: skip
    row.update(over)
    return row


def _land(root: Path, rows: list[dict], source="crm", entity="contacts", name="p.jsonl") -> Path:
    folder = root / source / entity / f"dt={AS_OF.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = connect(tmp_path / "wh.duckdb")
    yield c
    c.close()


def test_person_contracts_null_an_invalid_optional_date_instead_of_quarantining():
    crm = source_contract("crm__contacts")
    assert {r.rule_id: r.action for r in crm.nullify_rules} == {"date_of_birth.type": "nullify"}
    assert all(r.severity == "warning" for r in crm.nullify_rules)
    loyalty = source_contract("loyalty__members")
    assert [r.rule_id for r in loyalty.nullify_rules] == ["birthday.type"]
    # keys, the ordering column and e-mails still quarantine
    assert crm.rules[0].rule_id == "contact_id.required" and crm.rules[0].action == "quarantine"
    assert next(r for r in crm.rules if r.rule_id == "email.format").action == "quarantine"
    assert next(r for r in crm.rules if r.rule_id == "country_code.format").action == "quarantine"
    assert next(r for r in crm.rules if r.rule_id == "updated_at.type").action == "quarantine"


def test_bad_date_of_birth_lands_null_counted_and_sampled(con, tmp_path):
    landing = tmp_path / "landing"
    _land(
        landing,
        [
            _contact(contact_id="GOOD"),
            *[_contact(contact_id=f"OK{i}") for i in range(30)],  # under maxQuarantineShare
            _contact(contact_id="BADDOB", date_of_birth=BAD_DOB),
            _contact(contact_id="FEB30", date_of_birth=" 1945-02-30 "),
            # a row quarantined for another reason keeps its text as read, the bad date included
            _contact(contact_id="BOTH", date_of_birth=BAD_DOB, updated_at="never"),
        ],
    )
    batch, gate, published = night(con, "crm__contacts", landing, "r1", AS_OF)
    assert gate.passed and published, gate.details
    assert (batch.extracted, batch.loaded, batch.quarantined, batch.deduplicated) == (34, 33, 1, 0)
    assert batch.quarantined_by_rule == {"updated_at.type": 1}
    assert batch.nulled_by_rule == {"date_of_birth.type": 2}
    assert batch.nulled == 2
    assert batch.warnings_by_rule == {"date_of_birth.type": 3}  # the quarantined row's too
    raw = dict(
        con.execute(
            "select contact_id, date_of_birth from raw.crm__contacts "
            "where contact_id not like 'OK%' order by contact_id"
        ).fetchall()
    )
    assert raw == {"BADDOB": None, "FEB30": None, "GOOD": dt.date(1945, 4, 3)}
    # the rest of a nulled row lands as read
    assert con.execute(
        "select first_name, postal_code from raw.crm__contacts where contact_id = 'BADDOB'"
    ).fetchone() == ("Ada", "62701")
    assert con.execute(
        "select contact_id, date_of_birth, _rule_id from quarantine.crm__contacts"
    ).fetchall() == [("BOTH", BAD_DOB, "updated_at.type")]
    # samples: one per nulled rule, masked (the bad date of birth is PII)
    assert set(batch.nulled_samples) == {"date_of_birth.type"}
    assert [r["_source_row"] for r in batch.nulled_samples["date_of_birth.type"]] == [32, 33]
    sample = batch.nulled_samples["date_of_birth.type"][0]
    assert sample["_source_row"] is not None and sample["date_of_birth"] != BAD_DOB
    assert BAD_DOB not in json.dumps(batch.nulled_samples)
    # the outcome kept in the audit holds the counts
    outcome = json.loads(
        con.execute(
            "select outcome from audit.ingestion_batches where batch_id = ?", [batch.batch_id]
        ).fetchone()[0]
    )
    assert outcome["nulled_by_rule"] == batch.nulled_by_rule and outcome["nulled"] == 2


def test_rerun_publishes_the_nulled_row_once(con, tmp_path):
    landing = tmp_path / "landing"
    _land(landing, [_contact(contact_id="BADDOB", date_of_birth=BAD_DOB)])
    night(con, "crm__contacts", landing, "r1", AS_OF)
    again = [_contact(contact_id="BADDOB", date_of_birth=BAD_DOB), _contact(contact_id="NEW")]
    _land(landing, again, name="again.jsonl")  # a re-read of the same version, and a new row
    batch, gate, _ = night(con, "crm__contacts", landing, "r2", AS_OF)
    assert gate.passed and (batch.loaded, batch.deduplicated_in_raw) == (1, 1)
    assert con.execute("select count(*) from raw.crm__contacts").fetchone() == (2,)


def test_loyalty_birthday_is_nulled(con, tmp_path):
    landing = tmp_path / "landing"
    member = {
        "member_id": "M1", "crm_contact_id": None, "email": None, "phone": None,
        "first_name": "Ada", "last_name": "Lovelace", "birthday": "1945-02-30",
        "address_line1": None, "city": None, "postal_code": None, "tier": "gold",
        "points_balance": "10", "joined_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-11-01T00:00:00Z",
    }  # fmt: skip
    _land(landing, [member], source="loyalty", entity="members")
    batch, gate, published = night(con, "loyalty__members", landing, "r1", AS_OF)
    assert gate.passed and published
    assert (batch.loaded, batch.quarantined, batch.nulled_by_rule) == (1, 0, {"birthday.type": 1})
    assert con.execute("select member_id, birthday from raw.loyalty__members").fetchall() == [
        ("M1", None)
    ]


def test_a_retyped_date_column_still_blocks_rather_than_nulling_every_value(con, tmp_path):
    """DD/MM/YYYY in every row is a changed format, not a few bad values."""
    landing = tmp_path / "landing"
    rows = [
        _contact(contact_id=f"C{i}", date_of_birth=f"{i % 28 + 1:02d}/04/1945") for i in range(25)
    ]
    _land(landing, rows)
    _, gate, published = night(con, "crm__contacts", landing, "r1", AS_OF)
    assert not gate.passed and not published
    assert any(
        d.rule == "schema.retyped_column" and d.column == "date_of_birth" for d in gate.details
    ), gate.details


def test_python_reference_agrees_with_sql(con):
    crm = source_contract("crm__contacts")
    rows = [
        _contact(),
        _contact(date_of_birth=BAD_DOB),
        _contact(date_of_birth=" 1945-04-03 "),
        _contact(date_of_birth="", country_code="us"),
        _contact(date_of_birth="45-04-03"),
        _contact(country_code=None, updated_at="bad"),
    ]
    expected_nulled = [[], ["date_of_birth.type"], [], [], ["date_of_birth.type"], []]
    assert [rules_python.nulled_rules(crm, r) for r in rows] == expected_nulled
    assert rules_python.landed_row(crm, rows[1])["date_of_birth"] is None
    assert rules_python.landed_row(crm, rows[4])["date_of_birth"] is None
    assert rules_python.landed_row(crm, rows[2]) == rows[2]
    py = [
        (rules_python.failed_rules(crm, r, "error"), rules_python.failed_rules(crm, r, "warning"))
        for r in rows
    ]
    con.execute(
        "create table b as select * from (values "
        + ", ".join(
            "(" + ", ".join("null" if r[c] is None else f"'{r[c]}'" for c in crm.column_names) + ")"
            for r in rows
        )
        + ") t(" + ", ".join(crm.column_names) + ")"
    )  # fmt: skip
    sql = con.execute(
        f"select {failed_rules_sql(crm, 'error')}, {failed_rules_sql(crm, 'warning')} "
        f"from (select *, {trimmed_columns_sql(crm)} from b)"
    ).fetchall()
    assert [(list(e), list(w)) for e, w in sql] == py


def _contract_file(tmp_path: Path, prop: str, extra_props: str = "") -> Path:
    path = tmp_path / "x__y.odcs.yaml"
    path.write_text(
        "kind: DataContract\nid: x__y\nschema:\n  - name: x__y\n    properties:\n"
        "      - {name: id, logicalType: string, primaryKey: true, required: true}\n"
        "      - {name: updated_at, logicalType: timestamp, required: true}\n"
        f"      - {prop}\n{extra_props}"
    )
    return path


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        (
            "{name: dob, logicalType: date, required: true, "
            "customProperties: [{property: onInvalid, value: nullify}]}",
            r"field 'dob': onInvalid: nullify needs an optional, non-key field",
        ),
        (
            "{name: dob, logicalType: date, customProperties: [{property: onInvalid, value: drop}]}",
            r"field 'dob': customProperties onInvalid must be quarantine\|nullify",
        ),
        (
            "{name: cc, logicalType: string, customProperties: [{property: onInvalid, value: "
            "nullify}], quality: [{id: cc.format, rule: pattern, pattern: '^[A-Z]{2}$', "
            "severity: error}]}",
            r"field cc: rule cc.format has severity error but the field is onInvalid: nullify",
        ),
    ],
)
def test_invalid_nullify_declarations_are_refused_naming_the_field(tmp_path, prop, message):
    with pytest.raises(ContractError, match=message):
        load_contract(_contract_file(tmp_path, prop))


def test_nullify_on_the_ordering_column_is_refused(tmp_path):
    path = tmp_path / "x__y.odcs.yaml"
    path.write_text(
        "kind: DataContract\nid: x__y\nschema:\n  - name: x__y\n    properties:\n"
        "      - {name: id, logicalType: string, primaryKey: true, required: true}\n"
        "      - {name: updated_at, logicalType: timestamp, "
        "customProperties: [{property: onInvalid, value: nullify}]}\n"
    )
    with pytest.raises(ContractError, match="not allowed on the orderingColumn"):
        load_contract(path)


def test_quality_report_shows_nulled_counts_and_masked_samples(con, tmp_path):
    landing = tmp_path / "landing"
    _land(landing, [_contact(contact_id="GOOD"), _contact(contact_id="BAD", date_of_birth=BAD_DOB)])
    batch, gate, _ = night(con, "crm__contacts", landing, "r1", AS_OF)
    crm = source_contract("crm__contacts")
    ctx = BatchReport(crm, batch, "r1", gate).context()
    assert ctx["accounting"]["nulled"] == 1
    rule = next(r for r in ctx["rules"] if r["rule_id"] == "date_of_birth.type")
    assert (rule["verdict"], rule["action"], rule["nulled"], rule["count"]) == (
        "nulled", "nullify", 1, 1,
    )  # fmt: skip
    assert set(ctx["nulled_samples"]) == {"date_of_birth.type"}
    page = BatchReport(crm, batch, "r1", gate).write(root=tmp_path / "reports").read_text()
    assert 'data-nulled-samples="date_of_birth.type"' in page
    assert 'data-count="nulled"' in page and BAD_DOB not in page
