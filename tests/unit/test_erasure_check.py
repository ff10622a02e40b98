"""The erasure asset's WARN check: it fails (severity WARN, the run goes on) while a receipt's
destination delete ran out of attempts (status destinations_failed), and passes otherwise."""

import json

import dagster as dg
import duckdb
import pytest

from orchestration.defs.privacy.erasure import CHECK, erasure
from orchestration.defs.resources import Warehouse
from orchestration.privacy.erasure import DDL


@pytest.mark.parametrize("status", ["destinations_failed", "done"])
def test_a_failed_destination_delete_is_a_warn_check(tmp_path, monkeypatch, status):
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("C360_ERASURE_KEY", "check-test-key-" + "z" * 32)
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(DDL)
        ack = {"sync": "s", "destination": "braze", "identifier_hash": "h", "how": "delete",
               "status": "failed" if status != "done" else "ok", "reason": "", "attempts": 5}  # fmt: skip
        con.execute(
            "insert into audit.erasure_receipts values ('ER1', 'cli', null, now(), "
            "date '2026-11-20', 'r', ['email'], ['h'], '[]', 0, 0, ?, ?)",
            [json.dumps([ack]), status],
        )
    result = dg.materialize(
        [erasure],
        partition_key="2026-11-21",
        resources={"warehouse": Warehouse(path=str(warehouse), landing_dir=str(tmp_path / "l"))},
        raise_on_error=False,
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert result.success and evaluation.check_name == CHECK
    assert evaluation.passed is (status == "done")
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["destinations_failed"].value == (status != "done")
