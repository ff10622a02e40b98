"""Every dbt model that builds a table reports `dagster/row_count` from dbt's own count
(macros/row_count.sql, orchestration/dbt_events.py), and it equals the table's rows counted here
after the session's nightly run plus the rows the night's erasures deleted from it later in the
run (their receipts, audit.erasure_receipts). Views carry no count (that would run their query)."""

import json

import dagster as dg
import duckdb
import pytest

from orchestration.paths import dbt_project_dir

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]


def _materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    """unique_id -> metadata of each dbt model's materialization in the run."""
    out = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        metadata = record.asset_materialization.metadata
        unique_id = metadata.get("unique_id")
        if unique_id is not None:
            out[getattr(unique_id, "value", unique_id)] = metadata
    return out


def test_dbt_table_models_report_their_rows(pipeline):
    home, report = pipeline
    assert report.success
    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    found = _materializations(home.instance, report.run_id)
    tables = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if uid in found
        and node["config"]["materialized"] in ("table", "incremental", "reusable_table")
    }
    views = [uid for uid, node in manifest["nodes"].items()
             if uid in found and node["config"]["materialized"] == "view"]  # fmt: skip
    assert len(tables) >= 30 and views
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        receipts = [json.loads(p) for (p,) in con.execute("select places from audit.erasure_receipts").fetchall()]  # fmt: skip
        wrong = {}
        for uid, node in tables.items():
            place = f"{node['schema']}.{node['alias']}"
            rows = con.execute(f"select count(*) from {place}").fetchone()[0]
            erased = sum(p.get("rows", 0) for places in receipts for p in places
                         if p["place"] == place and p["action"] == "deleted")  # fmt: skip
            count = found[uid].get("dagster/row_count")
            if count is None or count.value != rows + erased:
                wrong[uid] = (count and count.value, rows, erased)
    assert not wrong, wrong
    assert not [uid for uid in views if "dagster/row_count" in found[uid]]
