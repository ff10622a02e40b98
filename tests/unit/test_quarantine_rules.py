"""Contract rules compiled to SQL: each rule class quarantines exactly the rows that break it."""

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from orchestration.contracts.model import source_contract
from orchestration.ingest.landing import LandingFileError
from orchestration.ingest.wap import batch_table, publish_batch, stage_batch
from orchestration.warehouse import connect

AS_OF = dt.date(2026, 11, 21)


def _order(**over):
    row = {
        "order_id": "O1", "shop_customer_id": "S1", "ordered_at": "2026-11-01T10:00:00Z",
        "status": "paid", "currency": "USD", "total_amount": "10.50", "discount_amount": None,
        "shipping_country_code": "US", "shipping_address_line1": "1 Main St",
        "shipping_address_line2": None, "shipping_city": "Springfield",
        "shipping_postal_code": "62701", "updated_at": "2026-11-01T10:00:00Z",
    }  # fmt: skip
    row.update(over)
    return row


def _land(root: Path, rows: list[dict], name="part-0.jsonl", day=AS_OF) -> Path:
    folder = root / "shop" / "orders" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = connect(tmp_path / "wh.duckdb")
    yield c
    c.close()


@pytest.mark.parametrize(
    ("override", "rule_id"),
    [
        ({"total_amount": "-1.00"}, "total_amount.non_negative"),
        ({"status": "teleported"}, "status.valid_values"),
        ({"ordered_at": "yesterday"}, "ordered_at.type"),
        ({"ordered_at": "2026-13-45T99:00:00Z"}, "ordered_at.type"),
        ({"shop_customer_id": None}, "shop_customer_id.required"),
        ({"shop_customer_id": "  "}, "shop_customer_id.required"),
        ({"currency": "usd"}, "currency.format"),
        ({"total_amount": "ten"}, "total_amount.type"),
    ],
)
def test_each_rule_quarantines_its_row_with_reason(con, tmp_path, override, rule_id):
    landing = tmp_path / "landing"
    _land(landing, [_order(order_id="GOOD"), _order(order_id="BAD", **override)])
    contract = source_contract("shop__orders")
    batch = stage_batch(con, contract, landing, AS_OF, "run-1")
    assert (batch.extracted, batch.loaded, batch.quarantined) == (2, 1, 1)
    assert batch.quarantined_by_rule == {rule_id: 1}
    assert publish_batch(con, contract, batch, "run-1", landing)
    bad = con.execute("select order_id, _rule_id, _reason from quarantine.shop__orders").fetchall()
    assert bad[0][0] == "BAD" and bad[0][1] == rule_id and bad[0][2]
    assert con.execute("select order_id from raw.shop__orders").fetchall() == [("GOOD",)]


def test_keep_latest_dedup_counts_and_keeps_newest(con, tmp_path):
    landing = tmp_path / "landing"
    _land(
        landing,
        [
            _order(status="paid", updated_at="2026-11-01T10:00:00Z"),
            _order(status="shipped", updated_at="2026-11-03T10:00:00Z"),
            _order(status="placed", updated_at="2026-10-30T10:00:00Z"),
        ],
    )
    contract = source_contract("shop__orders")
    batch = stage_batch(con, contract, landing, AS_OF, "r")
    assert (batch.extracted, batch.loaded, batch.deduplicated) == (3, 1, 2)
    assert con.execute(f"select status from {batch_table(contract)}__clean").fetchone() == (
        "shipped",
    )


def test_published_files_are_not_ingested_twice_and_later_partitions_wait(con, tmp_path):
    landing = tmp_path / "landing"
    _land(landing, [_order()])
    _land(landing, [_order(order_id="O2")], day=AS_OF + dt.timedelta(days=1))
    contract = source_contract("shop__orders")
    first = stage_batch(con, contract, landing, AS_OF, "r1")
    assert first.extracted == 1, "the dt= partition after as_of is not due yet"
    publish_batch(con, contract, first, "r1", landing)
    again = stage_batch(con, contract, landing, AS_OF, "r2")
    assert again.batch_id is None and again.extracted == 0
    nxt = stage_batch(con, contract, landing, AS_OF + dt.timedelta(days=1), "r3")
    assert nxt.extracted == 1
    audit = con.execute(
        "select extracted, loaded, quarantined, deduplicated from audit.ingestion_audit"
    ).fetchall()
    assert audit == [(1, 1, 0, 0)]


def test_missing_column_is_reported_as_schema_drift(con, tmp_path):
    landing = tmp_path / "landing"
    row = _order()
    del row["currency"]
    path = _land(landing, [row])
    batch = stage_batch(con, source_contract("shop__orders"), landing, AS_OF, "r")
    assert batch.missing_columns == {str(path): ["currency"]}


def test_empty_file_error_names_the_file(con, tmp_path):
    landing = tmp_path / "landing"
    path = _land(landing, [])
    with pytest.raises(LandingFileError, match=str(path)):
        stage_batch(con, source_contract("shop__orders"), landing, AS_OF, "r")


def test_masked_samples_hide_pii(con, tmp_path):
    landing = tmp_path / "landing" / "crm" / "contacts" / "dt=2026-11-21"
    landing.mkdir(parents=True)
    contract = source_contract("crm__contacts")
    header = ",".join(contract.column_names)
    values = {c: "" for c in contract.column_names}
    values.update(
        contact_id="C1", email="canary.person@example.com", phone="+1 212 555 0199",
        first_name="Canary", created_at="2026-01-01T00:00:00Z", updated_at="bad", is_deleted="false",
    )  # fmt: skip
    (landing / "a.csv").write_text(
        header + "\n" + ",".join(values[c] for c in contract.column_names) + "\n"
    )
    batch = stage_batch(con, contract, tmp_path / "landing", AS_OF, "r")
    assert batch.quarantined == 1
    text = json.dumps(batch.masked_samples)
    assert (
        "canary.person@example.com" not in text and "Canary" not in text and "5550199" not in text
    )
