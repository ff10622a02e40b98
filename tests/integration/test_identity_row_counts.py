"""The identity assets that write a table report `dagster/row_count` (the UI's row count, issue 18
core 5), equal to the table's rows counted here after the session's nightly run plus the rows the
night's erasures deleted from it later in the run (their receipts, audit.erasure_receipts)."""

import json

import dagster as dg
import duckdb
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

TABLES = {
    ("identity_state", "identity_model"): "audit.identity_models",
    ("identity", "probabilistic_links"): "identity.probabilistic_links",
    ("reference", "phone_numbers"): "reference.phone_numbers",
}


@pytest.mark.parametrize("key", list(TABLES), ids=lambda k: "/".join(k))
def test_identity_asset_row_count_is_its_table_rows(pipeline, key):
    home, report = pipeline
    assert report.success
    event = home.instance.get_latest_materialization_event(dg.AssetKey(list(key)))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        rows = con.execute(f"select count(*) from {TABLES[key]}").fetchone()[0]
        receipts = con.execute("select places from audit.erasure_receipts").fetchall()
    erased = sum(
        p.get("rows", 0)
        for (places,) in receipts
        for p in json.loads(places)
        if p["place"] == TABLES[key] and p["action"] == "deleted"
    )
    assert metadata["dagster/row_count"].value == rows + erased
    if key != ("identity", "probabilistic_links"):  # pairs may be none on a clean sample
        assert rows > 0
