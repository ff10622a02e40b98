"""marts.campaign_lift for A/B/n syncs and the revenue interval's edge cases
(orchestration/insight/lift.py): each arm against the holdout with its planted lift inside its
interval, the SRM check across all arms' expected shares, the chi-square tail against scipy, and
a defined revenue interval when the held-out members have no order."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from orchestration.activation.arms import ArmSpec, assign, expected_shares
from orchestration.insight import lift

SYNC = "file_drop__subjects"
SEGMENT = "lapsed_high_value"
SEGMENT_HOLDOUT = 0.10
ARMS = (ArmSpec("subject_a", 0.45), ArmSpec("subject_b", 0.45))
PLANTED = {"subject_a": 0.02, "subject_b": 0.06}  # conversion lift per arm
BASE_RATE = 0.03
MEAN_SPEND = 60.0
AUDIENCE = 6_000
NIGHTS = 10
FIRST_NIGHT = dt.date(2026, 11, 1)
MEASURED = dt.date(2026, 12, 31)


def _segment_bucket(customer: str) -> int:
    import hashlib

    return int(hashlib.md5(f"{customer}:{SEGMENT}".encode()).hexdigest()[:8], 16) % 10000


def _outcomes(seed: int, nights: int = NIGHTS, planted: dict | None = None) -> pd.DataFrame:
    """Send decisions of an A/B/n sync: the segment's holdout hash, then the sync's arm hash
    (the rest held out); each decision converts with BASE_RATE + its arm's planted lift and
    spends Gamma(4, mean MEAN_SPEND)."""
    planted = PLANTED if planted is None else planted
    rng = np.random.default_rng(seed)
    ids = [f"s{seed}-c{i:06d}" for i in range(AUDIENCE)]
    arms = [
        None if _segment_bucket(c) < SEGMENT_HOLDOUT * 10000 else assign(c, ARMS, SYNC) for c in ids
    ]
    held = np.array([a is None for a in arms])
    effect = np.array([0.0 if a is None else planted[a] for a in arms])
    frames = []
    for night in range(nights):
        converted = rng.random(AUDIENCE) < BASE_RATE + effect
        spend = rng.gamma(4.0, MEAN_SPEND / 4.0, AUDIENCE).round(2)
        frames.append(
            pd.DataFrame(
                {
                    "sync_id": SYNC,
                    "segment_name": SEGMENT,
                    "as_of": FIRST_NIGHT + dt.timedelta(days=night),
                    "customer_id": ids,
                    "is_holdout": held,
                    "arm": arms,
                    "outcome": np.where(held, "held_out", "ok"),
                    "has_ordered": converted,
                    "order_revenue": np.where(converted, spend, 0.0),
                    "is_window_complete": True,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _lift(frame: pd.DataFrame, arms=ARMS, holdout=SEGMENT_HOLDOUT) -> list[lift.LiftRow]:
    con = duckdb.connect()
    con.register("outcomes_df", frame)
    con.execute("create table outcomes as select * from outcomes_df")
    return lift.compute(
        con, MEASURED, {SEGMENT: holdout}, outcomes="outcomes", sync_arms={SYNC: arms}
    )


SEEDS = range(1, 61)


def test_each_arms_planted_lift_is_inside_its_interval():
    """60 seeds, 10 nights: every arm's pooled interval covers its own planted lift (conversion
    and revenue) in at least 53 seeds — a correct 95 % interval does so with probability 0.97 —
    and the arm with the larger lift is told apart from zero in every seed. Measured: subject_a
    55 / 54, subject_b 58 / 56 of 60 (conversion / revenue; docs/insight.md)."""
    covered = {a.name: 0 for a in ARMS}
    revenue_covered = {a.name: 0 for a in ARMS}
    significant = {a.name: 0 for a in ARMS}
    for seed in SEEDS:
        rows = _lift(_outcomes(seed))
        pooled = {r.arm: r for r in rows if r.scope == "all_nights"}
        assert set(pooled) == {"subject_a", "subject_b"}
        assert len(rows) == 2 * (NIGHTS + 1)
        for name, row in pooled.items():
            # both arms are compared with the same held-out members
            assert row.held_out == pooled["subject_a"].held_out
            covered[name] += row.conversion_lift_low <= PLANTED[name] <= row.conversion_lift_high
            revenue = PLANTED[name] * MEAN_SPEND
            revenue_covered[name] += row.revenue_lift_low <= revenue <= row.revenue_lift_high
            significant[name] += row.is_conversion_lift_significant
            assert row.revenue_lift_method == "welch"
            assert row.is_srm is False and row.srm_df == 2
    assert all(n >= 53 for n in covered.values()), covered
    assert all(n >= 53 for n in revenue_covered.values()), revenue_covered
    assert significant["subject_b"] == len(SEEDS), significant
    # the arm with the larger planted lift reports the larger lift in every seed
    for seed in range(1, 6):
        pooled = {r.arm: r for r in _lift(_outcomes(seed)) if r.scope == "all_nights"}
        assert pooled["subject_b"].conversion_lift > pooled["subject_a"].conversion_lift


def test_srm_across_all_arms_flags_a_skewed_assignment():
    expected = expected_shares(ARMS, SEGMENT_HOLDOUT)
    fair = [r for seed in range(1, 11) for r in _lift(_outcomes(seed, nights=1))]
    assert all(r.is_srm is False and r.srm_p_value > 0.001 for r in fair)
    row = fair[0]
    assert row.configured_holdout_share == pytest.approx(expected[None])
    assert row.configured_arm_share == pytest.approx(expected[row.arm])
    assert row.srm_customers_total == AUDIENCE

    # a third of arm b's members lost every night (e.g. their sends never recorded): every
    # arm's row is flagged, the pooled one too (it counts distinct customers)
    frame = _outcomes(1, nights=2)
    lost = sorted(set(frame.loc[frame["arm"] == "subject_b", "customer_id"]))[::3]
    rows = _lift(frame[~frame["customer_id"].isin(lost)])
    assert rows and all(r.is_srm for r in rows), [(r.arm, r.srm_p_value) for r in rows]
    # configured 60/30 but assigned 45/45: flagged
    rows = _lift(
        _outcomes(2, nights=1), arms=(ArmSpec("subject_a", 0.6), ArmSpec("subject_b", 0.3))
    )
    assert all(r.is_srm for r in rows)
    # an arm in the data that the config no longer names: no verdict
    rows = _lift(_outcomes(2, nights=1), arms=(ArmSpec("subject_a", 0.9),))
    assert all(r.is_srm is None and r.srm_p_value is None for r in rows)


def test_chi_square_tail_matches_scipy():
    for df in range(1, 8):
        for x in (0.1, 1.0, 3.84, 7.5, 20.0, 60.0):
            assert lift.chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-15)
    assert lift.chi2_sf(0.0, 3) == 1.0


def _arm(values: list[float]) -> lift.Arm:
    return lift.Arm(
        len(values), sum(v > 0 for v in values), sum(values), sum(v * v for v in values)
    )


def test_revenue_interval_with_no_order_among_the_held_out():
    """The end-to-end vip row (docs/insight.md): 86 treated with 9 orders, 6 held out with
    none. Welch's standard error counted the treated only and excluded 0; the pooled interval
    accounts for the held-out mean's uncertainty."""
    rng = np.random.default_rng(3)
    treated = _arm([*rng.gamma(4.0, 15.0, 9).round(2), *[0.0] * 77])
    control = _arm([0.0] * 6)
    d, w_low, w_high, _ = lift.welch(treated, control)
    assert w_low > 0  # the misbehaviour: a 6-member arm without orders taken as exact
    rev = lift.revenue_interval(treated, control)
    assert rev.method == "pooled" and "held-out" in rev.note
    assert rev.lift == pytest.approx(d)
    assert rev.low < w_low and rev.high > w_high and rev.low < 0 < rev.high
    # the pooled interval is Student's: its half-width against the textbook formula
    n1, n2 = treated.n, control.n
    sp = ((n1 - 1) * treated.variance + (n2 - 1) * control.variance) / (n1 + n2 - 2)
    half = lift.t_quantile(n1 + n2 - 2) * math.sqrt(sp * (1 / n1 + 1 / n2))
    assert rev.high - rev.lift == pytest.approx(half)


def test_revenue_interval_undefined_cases_are_null_with_a_reason():
    none = lift.revenue_interval(_arm([0.0] * 50), _arm([0.0] * 6))
    assert (none.low, none.high, none.method) == (None, None, None)
    assert "no revenue variance in either arm" in none.note
    single = lift.revenue_interval(_arm([0.0, 5.0, 0.0]), _arm([7.0]))
    assert single.low is None and "fewer than 2 members" in single.note
    both = lift.revenue_interval(_arm([0.0, 5.0, 9.0]), _arm([0.0, 3.0]))
    assert both.method == "welch" and both.note is None and both.low < both.high


def test_a_sync_without_orders_in_the_holdout_gets_a_defined_row():
    """Through compute and write: the held-out members never order; the row has the pooled
    interval and its note, ROI bounds from it, and nothing is NaN in the mart."""
    frame = _outcomes(4, nights=1, planted={"subject_a": 0.05, "subject_b": 0.05})
    frame.loc[frame["is_holdout"], ["has_ordered", "order_revenue"]] = [False, 0.0]
    con = duckdb.connect()
    con.register("outcomes_df", frame)
    rows = lift.compute(
        con, MEASURED, {SEGMENT: SEGMENT_HOLDOUT}, {SYNC: 0.1}, "outcomes_df",
        sync_arms={SYNC: ARMS},
    )  # fmt: skip
    assert rows and all(r.revenue_lift_method == "pooled" for r in rows)
    assert all(r.roi_low is not None and r.roi_low < r.roi < r.roi_high for r in rows)
    lift.write(con, rows, "main.lift")
    assert con.execute(
        "select count(*), count(revenue_lift_low), count(revenue_lift_note), count(arm) "
        "from main.lift"
    ).fetchall() == [(len(rows), len(rows), len(rows), len(rows))]
    # both arms without any order either: the interval is null, the reason recorded
    frame[["has_ordered", "order_revenue"]] = [False, 0.0]
    con.register("outcomes_df", frame)
    rows = lift.compute(con, MEASURED, {SEGMENT: SEGMENT_HOLDOUT}, outcomes="outcomes_df")
    assert all(r.revenue_lift_low is None and r.roi_low is None for r in rows)
    lift.write(con, rows, "main.lift")
    assert con.execute("select count(revenue_lift_low) from main.lift").fetchall() == [(0,)]
