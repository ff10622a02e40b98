"""The erasure sweep reaches tables keyed by a source id only (an incremental model such as
intermediate.int_activity__orders keeps the person's shop_customer_id and shipping address, with
no email or customer id, and is not rebuilt from raw), by columns named for that id only."""

import datetime as dt

import pytest

from orchestration.privacy.erasure import erase_pending
from tests.unit.test_erasure import _small_warehouse

AS_OF = dt.date(2026, 11, 21)


@pytest.fixture(autouse=True)
def _key(monkeypatch, tmp_path):
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_ERASURE_KEY", "unit-test-key-" + "x" * 32)


def test_a_table_keyed_by_the_persons_shop_id_loses_their_rows_only(tmp_path):
    landing = tmp_path / "landing"
    with _small_warehouse(tmp_path / "wh.duckdb", landing) as con:
        con.execute("create schema intermediate")
        con.execute(
            "create table intermediate.int_activity__orders (order_id varchar, "
            "shop_customer_id varchar, shipping_address_line1 varchar)"
        )
        con.execute(
            "insert into intermediate.int_activity__orders values "
            "('O1', 'S9', '9 Gone Street'), ('O2', 'S1', '1 Kept Road')"
        )
        # the same text in a column that does not hold shop ids is someone else's
        con.execute("create table intermediate.codes (code varchar, note varchar)")
        con.execute("insert into intermediate.codes values ('S9', 'a voucher code')")
        erase_pending(con, AS_OF, "run1", landing=landing, outbox=tmp_path / "outbox")
        left = con.execute(
            "select order_id from intermediate.int_activity__orders order by 1"
        ).fetchall()
        codes = con.execute("select count(*) from intermediate.codes").fetchone()
        places = con.execute("select places from audit.erasure_receipts").fetchone()[0]
    assert left == [("O2",)]
    assert codes == (1,)
    assert "intermediate.int_activity__orders" in places
