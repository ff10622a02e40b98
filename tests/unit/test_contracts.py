"""Source contracts: shape, required metadata, and agreement with the dbt sources."""

from pathlib import Path

import pytest
import yaml

from orchestration.contracts.model import ContractError, all_source_contracts, load_contract
from orchestration.paths import REPO_ROOT, dbt_project_dir

CONTRACT_FILES = sorted((REPO_ROOT / "data_contracts" / "sources").glob("*.odcs.yaml"))


def test_every_contract_file_is_one_entity_with_a_staging_model():
    """The source list is the contract files: each loads with the id its name says, as
    `<source>__<entity>`, and has its staging model `stg_<source>__<entity>.sql`."""
    stems = [p.name.removesuffix(".odcs.yaml") for p in CONTRACT_FILES]
    contracts = all_source_contracts()
    assert [c.id for c in contracts] == stems and len(stems) >= 11
    for c in contracts:
        assert c.id == f"{c.source}__{c.entity}"
        model = dbt_project_dir() / f"models/staging/{c.source}/stg_{c.id}.sql"
        assert model.is_file(), model


@pytest.mark.parametrize("contract", all_source_contracts(), ids=lambda c: c.id)
def test_contract_declares_key_policy_pii_and_severities(contract):
    assert contract.primary_key, "primary key"
    assert contract.duplicate_policy in ("keep_latest", "block")
    assert all(
        f.classification in ("public", "internal", "pii", "sensitive") for f in contract.fields
    )
    assert all(r.severity in ("error", "warning") for r in contract.rules)
    assert contract.ordering_column in contract.column_names


def test_pii_fields_are_classified():
    contacts = next(c for c in all_source_contracts() if c.id == "crm__contacts")
    assert {"email", "phone", "mobile_phone", "first_name", "last_name", "date_of_birth"} <= set(
        contacts.pii_columns
    )


def test_record_with_only_id_name_dob_and_address_is_valid_input():
    """No email, no phone: still a valid CRM contact (identity must cope without them)."""
    contacts = next(c for c in all_source_contracts() if c.id == "crm__contacts")
    required = {f.name for f in contacts.fields if f.required}
    assert required <= {"contact_id", "created_at", "updated_at", "is_deleted"}


def test_contract_columns_equal_dbt_source_columns():
    """A contract and its dbt source declaration must not drift apart."""
    for contract in all_source_contracts():
        path = (
            dbt_project_dir() / f"models/staging/{contract.source}/_{contract.source}__sources.yml"
        )
        doc = yaml.safe_load(path.read_text())
        table = next(t for s in doc["sources"] for t in s["tables"] if t["name"] == contract.entity)
        assert table["identifier"] == contract.id
        declared = [c["name"] for c in table["columns"] if not c["name"].startswith("_")]
        assert declared == list(contract.column_names), contract.id


def test_malformed_contract_error_names_file_and_field(tmp_path: Path):
    bad = tmp_path / "x__y.odcs.yaml"
    bad.write_text(
        "kind: DataContract\nid: x__y\nschema:\n  - name: x__y\n    properties:\n"
        "      - {name: amount, logicalType: money}\n"
    )
    with pytest.raises(
        ContractError, match=r"x__y.odcs.yaml: field 'amount': unsupported logicalType"
    ):
        load_contract(bad)
