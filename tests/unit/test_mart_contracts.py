"""Mart contracts: every ODCS file under data_contracts/marts/ equals the enforced dbt contract of
its model (column names in order, types, descriptions), so consumers read one definition."""

from pathlib import Path

import pytest
import yaml

from orchestration.paths import REPO_ROOT, dbt_project_dir

MART_CONTRACTS = sorted((REPO_ROOT / "data_contracts" / "marts").glob("*.odcs.yaml"))


def _dbt_model(name: str) -> dict:
    for path in (dbt_project_dir() / "models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            if model["name"] == name:
                return model
    raise AssertionError(f"no dbt model {name}")


def test_customer_360_has_a_mart_contract():
    assert [p.name for p in MART_CONTRACTS] == ["customer_360.odcs.yaml"]


@pytest.mark.parametrize("path", MART_CONTRACTS, ids=lambda p: p.name)
def test_mart_contract_equals_the_enforced_dbt_contract(path: Path):
    doc = yaml.safe_load(path.read_text())
    custom = {p["property"]: p["value"] for p in doc["customProperties"]}
    model = _dbt_model(custom["dbtModel"])
    assert model["config"]["contract"]["enforced"] is True
    odcs = [
        (p["name"], p["physicalType"], p.get("description", ""))
        for p in doc["schema"][0]["properties"]
    ]
    dbt = [(c["name"], c["data_type"], c.get("description", "")) for c in model["columns"]]
    assert odcs == dbt
    pii = {p["name"] for p in doc["schema"][0]["properties"] if p["classification"] == "pii"}
    assert {"email", "phone", "first_name", "last_name", "date_of_birth"} <= pii
