"""The measurement marts built by dbt on the closed-loop fixture (tests/unit/test_closed_loop.py):
kpi_campaign_conversion and kpi_retention_cohorts from the real models, and campaign_lift computed
by orchestration/insight/lift.py from the campaign_outcomes dbt wrote."""

import datetime as dt

import pytest

from orchestration.insight import lift
from tests.unit import test_closed_loop as closed_loop


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setattr(
        closed_loop, "MODELS", closed_loop.MODELS + " kpi_campaign_conversion kpi_retention_cohorts"
    )
    try:
        con = closed_loop._build(tmp_path_factory.mktemp("lift_marts"))
    finally:
        patch.undo()
    yield con
    con.close()


def test_campaign_conversion_per_sync_night_and_arm(warehouse):
    rows = warehouse.execute(
        "select sync_id, segment_name, send_as_of, arm, members, delivered, opened, clicked, "
        "converted, orders, cast(revenue as double), is_window_complete "
        "from marts.kpi_campaign_conversion order by send_as_of, arm"
    ).fetchall()
    d = dt.date
    assert rows == [
        # C2 held out on 03-01 ordered O5 (20.00) in the window; C1 sent: opened, ordered O1 (50.00)
        ("s_email", "seg", d(2026, 3, 1), "held_out", 1, 0, 0, 0, 1, 1, 20.0, True),
        ("s_email", "seg", d(2026, 3, 1), "treated", 1, 1, 1, 0, 1, 1, 50.0, True),
        # the 03-09 send's window is still open at as_of 03-10; O6 is in it
        ("s_email", "seg", d(2026, 3, 9), "treated", 1, 0, 0, 0, 1, 1, 15.0, False),
    ]


def test_retention_cohorts(warehouse):
    rows = warehouse.execute(
        "select cohort_month, months_since_first_order, cohort_customers, active_customers, "
        "retention_rate, cast(revenue as double), is_month_complete "
        "from marts.kpi_retention_cohorts order by all"
    ).fetchall()
    d = dt.date
    # C1 first ordered in February (O2), again in March; C2 first in March; cancelled O4 ignored
    assert rows == [
        (d(2026, 2, 1), 0, 1, 1, 1.0, 70.0, True),
        (d(2026, 2, 1), 1, 1, 1, 1.0, 50.0 + 90.0 + 15.0, False),
        (d(2026, 3, 1), 0, 1, 1, 1.0, 20.0, False),
    ]


def test_campaign_lift_from_the_dbt_outcomes(warehouse):
    rows = lift.compute(warehouse, dt.date(2026, 3, 10), {"seg": 0.5})
    # only the 03-01 night has a complete window and both arms
    assert [(r.scope, r.send_as_of) for r in rows] == [
        ("night", dt.date(2026, 3, 1)),
        ("all_nights", None),
    ]
    night = rows[0]
    assert (night.treated, night.held_out) == (1, 1)
    assert night.conversion_lift == 0.0 and night.revenue_lift_per_member == 30.0
    assert night.conversion_lift_low < 0 < night.conversion_lift_high
    assert night.observed_holdout_share == 0.5 and night.is_srm is False
