"""The marketer_report asset writes the night's report and links it from its metadata."""

import dagster as dg

from orchestration.defs.insight.report import marketer_report
from orchestration.defs.resources import Warehouse
from tests.unit.test_report import AS_OF, build_warehouse


def test_asset_writes_the_report_and_links_it(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_REPORTS_DIR", str(tmp_path / "reports"))
    path = tmp_path / "w.duckdb"
    build_warehouse(path)
    result = dg.materialize(
        [marketer_report],
        resources={"warehouse": Warehouse(path=str(path), landing_dir=str(tmp_path))},
        partition_key=AS_OF.isoformat(),
    )
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    written = tmp_path / "reports" / "2026-03-10" / "index.html"
    assert isinstance(metadata["report"], dg.UrlMetadataValue)
    assert metadata["report"].url == written.as_uri()
    assert metadata["report"].url.startswith("file:///")
    assert written.exists() and "vegaEmbed" in written.read_text()
    assert metadata["charts_with_data"].value == 5
    assert metadata["charts_without_data"].value == "none"
