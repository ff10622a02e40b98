"""Mart contracts: customer_360's enforced dbt contract is its ODCS contract's columns, then each
trait's published columns (names in order, types, descriptions), so consumers read one definition."""

import yaml

from orchestration.paths import REPO_ROOT, dbt_project_dir

MART_CONTRACTS = sorted((REPO_ROOT / "data_contracts" / "marts").glob("*.odcs.yaml"))
TRAITS = dbt_project_dir() / "models" / "marts" / "customer_360" / "traits"


def _dbt_model(name: str) -> dict:
    for path in (dbt_project_dir() / "models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            if model["name"] == name:
                return model
    raise AssertionError(f"no dbt model {name}")


def test_customer_360_has_a_mart_contract():
    assert [p.name for p in MART_CONTRACTS] == ["customer_360.odcs.yaml"]


def test_the_enforced_dbt_contract_is_the_mart_contract_then_the_traits():
    doc = yaml.safe_load(MART_CONTRACTS[0].read_text())
    custom = {p["property"]: p["value"] for p in doc["customProperties"]}
    model = _dbt_model(custom["dbtModel"])
    assert model["config"]["contract"]["enforced"] is True
    core = [
        (p["name"], p["physicalType"], p.get("description", ""))
        for p in doc["schema"][0]["properties"]
    ]
    traits = [
        (c["name"], c["data_type"], c["description"])
        for t in sorted(TRAITS.glob("trait__*.yml"))
        for c in yaml.safe_load(t.read_text())["models"][0]["columns"][1:]
    ]
    dbt = [(c["name"], c["data_type"], c.get("description", "")) for c in model["columns"]]
    assert traits, "the project ships at least one trait (the pattern a newcomer copies)"
    assert dbt == core + traits
    tested = {c["name"]: c.get("data_tests") for c in model["columns"] if c.get("data_tests")}
    assert tested == {"customer_id": ["unique", "not_null"], "time_zone": ["not_null"]}
    pii = {p["name"] for p in doc["schema"][0]["properties"] if p["classification"] == "pii"}
    assert {"email", "phone", "first_name", "last_name", "date_of_birth"} <= pii
