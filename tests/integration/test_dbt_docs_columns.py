"""Every column a dbt model selects is declared with a description in its YAML (issue 18 core 6).

What a model selects is read from the warehouse of the session's nightly run (DuckDB's
information_schema of every table and view the run built), not from the YAML itself: a column a
model adds without documenting it fails here, which a manifest-only check cannot see. Parsing
the SQL instead would have to resolve `select *` through every upstream model and Jinja macro.
The run builds every dbt model, so a model without a relation fails too.
"""

from __future__ import annotations

import json

import pytest

from orchestration.paths import dbt_project_dir
from orchestration.warehouse import warehouse
from tests.unit.test_dbt_docs import selected_but_undescribed

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

# Models whose YAML (not yet) declares every column; each entry is a known gap that must shrink:
# the test fails once a listed model is fully described, so it leaves this list.
NOT_YET_DESCRIBED: set[str] = set()


def test_every_selected_column_is_described(pipeline):
    home, report = pipeline
    assert report.success
    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    models = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] != "ephemeral"
    ]
    with warehouse(home.warehouse, read_only=True) as con:
        rows = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "order by table_schema, table_name, ordinal_position"
        ).fetchall()
    columns: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in rows:
        columns.setdefault((schema, table), []).append(column)
    selected = {node["name"]: columns.get((node["schema"], node["alias"]), []) for node in models}

    not_built = sorted(name for name, cols in selected.items() if not cols)
    assert not not_built, "dbt models without a table after the nightly run: " + ", ".join(
        not_built
    )
    assert len(selected) >= 40
    missing = selected_but_undescribed(manifest, selected)
    gaps = {entry.split(".")[0] for entry in missing}
    assert gaps <= NOT_YET_DESCRIBED, "columns selected but not described in the model's YAML: " + (
        ", ".join(m for m in missing if m.split(".")[0] not in NOT_YET_DESCRIBED)
    )
    described_now = sorted(NOT_YET_DESCRIBED - gaps)
    assert not described_now, f"fully described now, remove from NOT_YET_DESCRIBED: {described_now}"
