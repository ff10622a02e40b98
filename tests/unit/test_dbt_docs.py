"""Every dbt model, and every column a model's YAML declares, has a description in the manifest
(`make manifest` writes dbt_project/target/manifest.json before the unit tests).

Whether the YAML declares every column a model selects needs the model's real output columns;
tests/integration/test_dbt_docs_columns.py compares `selected_but_undescribed` below with the
tables of the session's nightly run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from orchestration.paths import dbt_project_dir


def _manifest() -> dict[str, Any]:
    path = dbt_project_dir() / "target" / "manifest.json"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make manifest`")
    return json.loads(path.read_text())


def undescribed(manifest: dict[str, Any]) -> list[str]:
    """Names of models without a description and `model.column` pairs without one, sorted."""
    missing = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        if not node.get("description", "").strip():
            missing.append(node["name"])
        missing += [
            f"{node['name']}.{name}"
            for name, column in node.get("columns", {}).items()
            if not column.get("description", "").strip()
        ]
    return sorted(missing)


def selected_but_undescribed(
    manifest: dict[str, Any], selected: Mapping[str, Sequence[str]]
) -> list[str]:
    """`model.column` for each column a model selects (`selected`: model name → its table's
    columns) that its YAML leaves undeclared or declares without a description, sorted."""
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    missing = []
    for name, columns in selected.items():
        declared = models[name].get("columns", {})
        missing += [
            f"{name}.{column}"
            for column in columns
            if not declared.get(column, {}).get("description", "").strip()
        ]
    return sorted(missing)


def test_every_model_and_column_is_described() -> None:
    missing = undescribed(_manifest())
    assert not missing, "dbt models/columns without a description: " + ", ".join(missing)


def test_model_descriptions_state_their_grain() -> None:
    vague = [
        node["name"]
        for node in _manifest()["nodes"].values()
        if node["resource_type"] == "model"
        and "one row per" not in node.get("description", "").lower()
    ]
    assert not vague, "model descriptions not stating a grain ('one row per ...'): " + ", ".join(
        sorted(vague)
    )


def test_undescribed_names_the_model_and_the_column() -> None:
    manifest = {
        "nodes": {
            "model.p.a": {"resource_type": "model", "name": "a", "description": "", "columns": {}},
            "model.p.b": {
                "resource_type": "model",
                "name": "b",
                "description": "One row per b.",
                "columns": {"x": {"description": "x"}, "y": {"description": " "}},
            },
            "test.p.t": {"resource_type": "test", "name": "t", "description": ""},
        }
    }
    assert undescribed(manifest) == ["a", "b.y"]


def test_selected_but_undescribed_names_undeclared_and_blank_columns() -> None:
    manifest = {
        "nodes": {
            "model.p.a": {
                "resource_type": "model",
                "name": "a",
                "columns": {"x": {"description": "x"}, "y": {"description": ""}},
            },
            "model.p.b": {"resource_type": "model", "name": "b", "columns": {}},
        }
    }
    selected = {"a": ["x", "y", "z"], "b": ["k"]}
    assert selected_but_undescribed(manifest, selected) == ["a.y", "a.z", "b.k"]
    assert selected_but_undescribed(manifest, {"a": ["x"]}) == []
