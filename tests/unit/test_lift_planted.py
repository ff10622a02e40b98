"""The generator's treatment profile (demo/planted_treatment.py) on a scratch
warehouse holding only contact_history and customer_id_map: the planted conversions follow the
configured probabilities per arm, land the day after the send, are deterministic, and the truth's
expected figures match what was planted."""

import csv
import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from demo.planted_treatment import TreatmentTruth, plant

NIGHTS = [dt.date(2026, 11, 1), dt.date(2026, 11, 2)]
MEMBERS = 20_000  # per night; every 10th held out, every 50th (all sent) without a shop account
T_SHOP = 1 - (MEMBERS // 50) / (MEMBERS * 9 // 10)  # share of the treated with a shop account


def _warehouse(path: Path) -> str:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema activation; create schema marts")
        con.execute(
            "create table activation.contact_history as "
            "select 'h' || n.night || '-' || i as contact_id, 'sync_a' as sync_id, "
            "'seg_a' as segment_name, n.night as as_of, 'C' || i as customer_id, "
            "case when i % 10 = 0 then 'held_out' else 'ok' end as outcome, "
            "i % 10 = 0 as is_holdout, n.night + interval 1 day as recorded_at "
            f"from range({MEMBERS}) t(i), "
            f"(select unnest([date '{NIGHTS[0]}', date '{NIGHTS[1]}']) as night) n "
            "union all select 'f' || i, 'sync_a', 'seg_a', date '2026-11-01', 'F' || i, "
            "'filtered', false, timestamp '2026-11-02' from range(100) t(i)"
        )
        con.execute(
            "create table marts.customer_id_map as "
            "select 'shop' as source, 'customers' as entity, 'S' || i as source_record_id, "
            f"'C' || i as customer_id from range({MEMBERS}) t(i) where i % 50 <> 1"
        )
    return str(path)


def test_planted_conversions_follow_the_truth(tmp_path):
    truth = TreatmentTruth(lift=0.05, base_rate=0.1, window_days=1,
                           warehouse=_warehouse(tmp_path / "wh.duckdb"))  # fmt: skip
    day = NIGHTS[1] + dt.timedelta(days=1)
    summary = plant(truth, 7, day, tmp_path / "landing", tmp_path / "truth")
    orders_file = tmp_path / "landing" / "shop" / "orders" / f"dt={day}" / "part-00001.jsonl"
    orders = [json.loads(line) for line in orders_file.read_text().splitlines()]
    assert summary["planted_orders_written"] == len(orders) > 0
    with (tmp_path / "truth" / "treatment_lift.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["send_as_of"] for r in rows] == [n.isoformat() for n in NIGHTS]

    for night, row in zip(NIGHTS, rows, strict=True):
        planted = [o for o in orders if o["ordered_at"].startswith(f"{night + dt.timedelta(1)}")]
        assert int(row["treated"]) == MEMBERS * 9 // 10 and int(row["held_out"]) == MEMBERS // 10
        t_conv, h_conv = (
            int(row["treated_planted_conversions"]),
            int(row["held_out_planted_conversions"]),
        )
        assert t_conv + h_conv == len(planted)  # each on the day after its night
        t_rate = t_conv / int(row["treated"])
        h_rate = h_conv / int(row["held_out"])
        # expected 0.147 and 0.1 (binomial sd 0.0026 and 0.0067)
        assert float(row["expected_treated_rate"]) == pytest.approx(0.15 * T_SHOP)
        assert float(row["expected_held_out_rate"]) == pytest.approx(0.10)
        assert abs(t_rate - float(row["expected_treated_rate"])) < 4 * 0.0026
        assert abs(h_rate - float(row["expected_held_out_rate"])) < 4 * 0.0067
        # a one-day window holds only the night's own sends
        assert float(row["expected_conversion_lift_in_window"]) == pytest.approx(
            float(row["expected_treated_rate"]) - float(row["expected_held_out_rate"])
        )
    assert {o["status"] for o in orders} == {"paid"}
    assert all(float(o["total_amount"]) > 0 for o in orders)
    mean = sum(float(o["total_amount"]) for o in orders) / len(orders)
    assert mean == pytest.approx(60.0, rel=0.05)  # Gamma(4, mean 60): sd of the mean ~1 %

    # deterministic: the same files again; a day earlier only the first night's orders exist
    first = orders_file.read_bytes()
    plant(truth, 7, day, tmp_path / "landing", tmp_path / "truth")
    assert orders_file.read_bytes() == first
    plant(truth, 7, NIGHTS[1], tmp_path / "landing2", tmp_path / "truth2")
    earlier = tmp_path / "landing2" / "shop" / "orders" / f"dt={NIGHTS[1]}" / "part-00001.jsonl"
    earlier_ids = {json.loads(line)["order_id"] for line in earlier.read_text().splitlines()}
    assert earlier_ids and earlier_ids < {o["order_id"] for o in orders}


def test_overlapping_windows_in_the_truth(tmp_path):
    """With a 2-day window, the first night's window also holds the second night's planted orders
    of the same customers: P = 1 - (1 - p)^2 for a member in the same arm both nights."""
    truth = TreatmentTruth(lift=0.05, base_rate=0.1, window_days=2,
                           warehouse=_warehouse(tmp_path / "wh.duckdb"))  # fmt: skip
    plant(truth, 7, NIGHTS[1] + dt.timedelta(days=2), tmp_path / "landing", tmp_path / "truth")
    with (tmp_path / "truth" / "treatment_lift.csv").open() as fh:
        first = next(csv.DictReader(fh))
    assert float(first["expected_treated_rate_in_window"]) == pytest.approx(T_SHOP * (1 - 0.85**2))
    assert float(first["expected_held_out_rate_in_window"]) == pytest.approx(1 - 0.9**2)
    assert float(first["expected_revenue_lift_per_member_in_window"]) == pytest.approx(
        (2 * 0.15 * T_SHOP - 2 * 0.1) * 60.0
    )


def test_without_a_warehouse_nothing_is_planted(tmp_path):
    truth = TreatmentTruth(warehouse=str(tmp_path / "missing.duckdb"), window_days=7)
    summary = plant(truth, 1, NIGHTS[0], tmp_path / "landing", tmp_path / "truth")
    assert summary["planted_orders_written"] == 0
    assert not (tmp_path / "landing" / "shop").exists()
    assert (tmp_path / "truth" / "treatment_lift.csv").read_text().count("\n") == 1  # header


def test_each_arm_gets_its_planted_lift(tmp_path):
    """A/B/n: contact_history rows carry their arm; `arm_lifts` plants each arm's own lift and
    the truth has one row per arm against the night's held-out members."""
    path = tmp_path / "wh.duckdb"
    _warehouse(path)
    with duckdb.connect(str(path)) as con:
        con.execute("alter table activation.contact_history add column arm varchar")
        con.execute(
            "update activation.contact_history set arm = case when is_holdout then null "
            "when cast(substr(customer_id, 2) as integer) % 2 = 0 then 'a' else 'b' end "
            "where outcome = 'ok'"
        )
    truth = TreatmentTruth(lift=0.05, base_rate=0.1, window_days=1, warehouse=str(path),
                           arm_lifts={"a": 0.02, "b": 0.08})  # fmt: skip
    summary = plant(truth, 7, NIGHTS[1] + dt.timedelta(days=1), tmp_path / "l", tmp_path / "t")
    with (tmp_path / "t" / "treatment_lift.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["send_as_of"], r["arm"]) for r in rows] == [
        (n.isoformat(), arm) for n in NIGHTS for arm in ("a", "b")
    ]
    assert summary["send_decisions_measured"] == 2 * MEMBERS
    for row in rows:
        lift = {"a": 0.02, "b": 0.08}[row["arm"]]
        assert float(row["planted_lift"]) == lift
        assert int(row["held_out"]) == MEMBERS // 10
        treated = int(row["treated"])
        # even ids not held out (every 10th is) are arm a, odd ones arm b
        assert treated == {"a": MEMBERS * 2 // 5, "b": MEMBERS // 2}[row["arm"]]
        shop = int(row["treated_shop_customers"]) / treated
        assert float(row["expected_treated_rate"]) == pytest.approx((0.1 + lift) * shop)
        sd = ((0.1 + lift) * (1 - 0.1 - lift) / treated) ** 0.5
        rate = int(row["treated_planted_conversions"]) / treated
        assert abs(rate - float(row["expected_treated_rate"])) < 4 * sd
