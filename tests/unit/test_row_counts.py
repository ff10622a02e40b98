"""Every Python asset that writes a table reports `dagster/row_count`, the key the Dagster UI
shows as the asset's row count (issue 18, core 5): the staged batch (rows of its __clean table)
and the raw table (all its rows after publish), counted independently here."""

from __future__ import annotations

import dagster as dg
import duckdb

from tests.ingest_night import copy_landing
from tests.unit.test_masking import AS_OF, generated  # noqa: F401

CONTACTS = "crm__contacts"


def test_staged_and_raw_assets_report_dagster_row_count(tmp_path, generated):  # noqa: F811
    from orchestration.defs.ingestion.factory import build_source_defs
    from orchestration.defs.resources import Warehouse

    landing = tmp_path / "landing"
    copy_landing(generated, landing, CONTACTS, AS_OF)
    wh = tmp_path / "wh.duckdb"
    result = dg.materialize(
        build_source_defs("crm").assets,
        selection=[dg.AssetKey(["staged", "crm", "contacts"]), dg.AssetKey(["crm", "contacts"])],
        partition_key=AS_OF.isoformat(),
        resources={"warehouse": Warehouse(path=str(wh), landing_dir=str(landing))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    (staged,) = result.asset_materializations_for_node("staged__crm__contacts")
    (raw,) = result.asset_materializations_for_node("crm__contacts")
    with duckdb.connect(str(wh), read_only=True) as con:
        raw_rows = con.execute(f"select count(*) from raw.{CONTACTS}").fetchone()[0]
    assert raw_rows > 0
    assert raw.metadata["dagster/row_count"].value == raw_rows
    assert staged.metadata["dagster/row_count"].value == staged.metadata["clean_rows"].value
    assert 0 < staged.metadata["clean_rows"].value <= raw_rows
