"""`c360 contracts compile [--check]`: each source's dbt sources YAML is generated from its
contracts, so a column is declared in the contract only (issue 18 core 4)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import yaml

from orchestration.contracts import dbt_sources, generated
from orchestration.contracts.model import all_source_contracts, load_contract
from orchestration.paths import REPO_ROOT

NEW_CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: reviews__ratings
name: reviews__ratings
version: 1.0.0
status: active
customProperties:
  - {property: maxStaleDays, value: 10}
schema:
  - name: reviews__ratings
    description: One row per product rating.
    properties:
      - {name: rating_id, logicalType: string, primaryKey: true, required: true}
      - {name: stars, logicalType: integer, description: Stars given (1-5).}
      - {name: updated_at, logicalType: timestamp, required: true}
"""


def test_the_committed_sources_yaml_is_what_the_contracts_give():
    assert generated.stale_files() == []
    result = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "contracts", "compile", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "current" in result.stdout


def test_every_contract_column_is_declared_in_order_with_its_type():
    rendered = dbt_sources.render_all()
    for c in all_source_contracts():
        doc = yaml.safe_load(rendered[dbt_sources.sources_path(c.source)])
        (source,) = doc["sources"]
        table = next(t for t in source["tables"] if t["name"] == c.entity)
        columns = [(col["name"], col.get("data_type")) for col in table["columns"]]
        assert columns[: len(c.fields)] == [(f.name, f.warehouse_type) for f in c.fields]
        assert [n for n, _ in columns[len(c.fields) :]] == [
            "_batch_id",
            "_loaded_at",
            "_source_file",
        ]
        assert table["identifier"] == c.id and table["config"]["loaded_at_field"] == "_loaded_at"


def test_a_new_contract_compiles_to_its_sources_file_and_check_sees_staleness(
    tmp_path, monkeypatch
):
    dbt = tmp_path / "dbt_project"
    monkeypatch.setattr(dbt_sources, "dbt_project_dir", lambda: dbt)
    path = tmp_path / "reviews__ratings.odcs.yaml"
    path.write_text(NEW_CONTRACT)
    contract = load_contract(path)
    rendered = dbt_sources.render_all([contract])
    target = dbt / "models/staging/reviews/_reviews__sources.yml"
    assert list(rendered) == [target]
    doc = yaml.safe_load(rendered[target])
    (table,) = doc["sources"][0]["tables"]
    assert doc["sources"][0]["name"] == "reviews" and doc["sources"][0]["schema"] == "raw"
    assert table["identifier"] == "reviews__ratings"
    assert table["config"]["freshness"]["warn_after"] == {"count": 10, "period": "day"}
    assert table["config"]["freshness"]["error_after"] == {"count": 20, "period": "day"}
    stars = next(c for c in table["columns"] if c["name"] == "stars")
    assert stars == {"name": "stars", "description": "Stars given (1-5).", "data_type": "bigint"}
    # missing, then current once written, then stale after a hand edit
    assert generated.stale_files(rendered) == [target]
    target.parent.mkdir(parents=True)
    target.write_text(rendered[target])
    assert generated.stale_files(rendered) == []
    target.write_text(rendered[target].replace("Stars given", "Stars"))
    assert generated.stale_files(rendered) == [target]


def test_compile_rewrites_a_hand_edited_sources_file(tmp_path, monkeypatch):
    dbt = tmp_path / "dbt_project"
    shutil.copytree(REPO_ROOT / "dbt_project/models/staging", dbt / "models/staging")
    monkeypatch.setattr(dbt_sources, "dbt_project_dir", lambda: dbt)
    crm = dbt / "models/staging/crm/_crm__sources.yml"
    original = crm.read_text()
    crm.write_text(original.replace("- name: account_id\n", "- name: account_ident\n", 1))
    assert generated.compile_all(dbt_sources.render_all()) == [crm]
    assert crm.read_text() == original and generated.compile_all(dbt_sources.render_all()) == []
