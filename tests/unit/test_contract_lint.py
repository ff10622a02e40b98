"""Contracts are valid ODCS: every file under data_contracts/ validates against the vendored
official JSON schema of its apiVersion, and the loader reads the v3.1 forms it uses."""

from pathlib import Path

import pytest
import yaml

from orchestration.contracts.lint import (
    SCHEMAS_DIR,
    contract_files,
    main,
    problems,
    vendored_versions,
)
from orchestration.contracts.model import ContractError, load_contract

HEAD = (
    "apiVersion: v3.1.0\nkind: DataContract\nid: x__y\nversion: 1.0.0\nstatus: active\n"
    "schema:\n  - name: x__y\n    properties:\n"
    "      - {name: id, logicalType: string, primaryKey: true, required: true}\n"
    "      - {name: updated_at, logicalType: timestamp, required: true}\n"
)


def _contract(tmp_path: Path, *props: str, head: str = HEAD) -> Path:
    path = tmp_path / "x__y.odcs.yaml"
    path.write_text(head + "".join(f"      - {p}\n" for p in props))
    return path


def test_every_contract_is_valid_odcs():
    files = contract_files()
    assert {f.parent.name for f in files} == {"sources", "marts", "activation"}
    assert [line for f in files for line in problems(f)] == []
    assert main([]) == 0


def test_schema_is_the_declared_version():
    versions = {yaml.safe_load(f.read_text())["apiVersion"] for f in contract_files()}
    assert versions <= set(vendored_versions()) and versions


def test_a_dotted_rule_id_fails_lint_and_the_loader(tmp_path):
    prop = (
        "{name: cc, logicalType: string, quality: [{id: cc.format, metric: invalidValues, "
        "arguments: {pattern: '^[A-Z]{2}$'}, mustBe: 0}]}"
    )
    path = _contract(tmp_path, prop)
    found = problems(path)
    assert len(found) == 1 and ".schema[0].properties[2].quality[0].id" in found[0]
    assert "does not match" in found[0]
    with pytest.raises(ContractError, match=r"field cc: quality id 'cc.format' must match"):
        load_contract(path)


def test_another_odcs_version_is_refused_by_name(tmp_path):
    path = _contract(tmp_path, head=HEAD.replace("v3.1.0", "v3.0.2"))
    assert problems(path) == [
        f"{path}: apiVersion 'v3.0.2': no vendored ODCS schema (have v3.1.0 in {SCHEMAS_DIR})"
    ]
    assert main([str(path)]) == 1


def test_an_unknown_logical_type_fails_lint(tmp_path):
    found = problems(_contract(tmp_path, "{name: amount, logicalType: money}"))
    assert len(found) == 1 and ".schema[0].properties[2].logicalType" in found[0]


def test_v31_rules_load_with_column_qualified_ids(tmp_path):
    path = _contract(
        tmp_path,
        "{name: cc, logicalType: string, quality: [{id: format, metric: invalidValues, "
        "arguments: {pattern: '^[A-Z]{2}$'}, mustBe: 0, severity: warning, description: bad cc}]}",
        "{name: tier, logicalType: string, quality: [{id: known, metric: invalidValues, "
        "arguments: {validValues: [a, b]}, mustBe: 0}]}",
        "{name: qty, logicalType: integer, logicalTypeOptions: {minimum: 1}}",
        "{name: amount, logicalType: number, logicalTypeOptions: {minimum: 0}}",
        "{name: score, logicalType: number, logicalTypeOptions: {minimum: 2.5}}",
    )
    assert problems(path) == []
    rules = {r.rule_id: r for r in load_contract(path).rules}
    assert rules["cc.format"].kind == "pattern" and rules["cc.format"].severity == "warning"
    assert rules["cc.format"].description == "bad cc"
    assert rules["tier.known"].valid_values == ("a", "b")
    assert rules["tier.known"].severity == "error"
    assert (rules["qty.positive"].minimum, rules["qty.positive"].description) == (
        1,
        "qty is below 1",
    )
    assert rules["amount.non_negative"].description == "amount is negative"
    assert rules["score.minimum"].description == "score is below 2.5"
    assert [r for r in rules if r.startswith("qty.")] == ["qty.type", "qty.positive"]


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        (
            "{name: n, logicalType: integer, logicalTypeOptions: {maximum: 9}}",
            r"field 'n': logicalTypeOptions maximum not enforced by c360",
        ),
        (
            "{name: s, logicalType: string, logicalTypeOptions: {minimum: 1}}",
            r"field 's': minimum needs an integer or number field",
        ),
        (
            "{name: s, logicalType: string, quality: [{metric: invalidValues, "
            "arguments: {validValues: [a]}, mustBeLessThan: 5}]}",
            r"field s: invalidValues needs mustBe: 0 alone",
        ),
        (
            "{name: s, logicalType: string, quality: [{metric: nullValues, mustBe: 0}]}",
            r"field s: quality metric 'nullValues' not supported",
        ),
    ],
)
def test_what_c360_would_not_enforce_is_refused_naming_the_field(tmp_path, prop, message):
    path = _contract(tmp_path, prop)
    with pytest.raises(ContractError, match=message):
        load_contract(path)
