"""End to end, two nightlies of a small generated home with the `treatment` profile (closed loop):
the first night's file-drop syncs send to their segments and hold out the holdout; generating the
third day plants the conversions of those sends (read from this home's contact_history) on the
day after them; the nightly of the third day measures them in marts.campaign_lift with a one-day
attribution window."""

import csv
import datetime as dt
import json

import dagster as dg
import duckdb
import pytest

from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="campaign_lift")]
SYNC = "file_drop__lapsed_high_value"
CUSTOMERS, SEED = 700, 5


def test_campaign_lift_measures_the_planted_treatment(tmp_path, monkeypatch):
    from demo.generator import generate
    from demo.planted_treatment import TreatmentTruth
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    # an in-memory Dagster instance: no SQLite event log or per-step log capture to write;
    # these tests read the warehouse and the run report, never the instance's history
    instance = dg.DagsterInstance.ephemeral()
    monkeypatch.setenv(
        "C360_DBT_VARS",
        json.dumps({"campaign_attribution_days": 1, "campaign_engagement_days": 1}),
    )
    # a strong planted effect, so that a handful of held-out members shows it
    truth = TreatmentTruth(lift=0.5, base_rate=0.1)
    sent_night, measured = AS_OF, AS_OF + dt.timedelta(days=2)

    generate(CUSTOMERS, SEED, sent_night, home.landing, home.truth, progress=None,
             treatment_truth=truth)  # fmt: skip
    params = json.loads((home.truth / "treatment_parameters.json").read_text())
    assert params["planted_orders_written"] == 0  # no warehouse yet: nothing was sent
    assert run_nightly(sent_night, instance=instance, log_level="WARNING").success

    generate(CUSTOMERS, SEED, measured, home.landing, home.truth, progress=None,
             treatment_truth=truth)  # fmt: skip
    params = json.loads((home.truth / "treatment_parameters.json").read_text())
    assert params["window_days"] == 1 and params["planted_orders_written"] > 0
    with (home.truth / "treatment_lift.csv").open() as fh:
        planted = {r["sync_id"]: r for r in csv.DictReader(fh)}
    assert SYNC in planted and planted[SYNC]["send_as_of"] == sent_night.isoformat()
    report = run_nightly(measured, instance=instance, log_level="WARNING")
    assert report.success
    assert "marts/campaign_lift" in report.materialized

    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        in_staging = con.execute(
            "select count(*) from staging.stg_shop__orders where order_id like 'OT%'"
        ).fetchone()[0]
        rows = con.execute(
            "select scope, send_as_of, treated, held_out, treated_conversions, "
            "held_out_conversions, conversion_lift_low, conversion_lift_high, "
            "configured_holdout_share, is_srm, measured_as_of "
            "from marts.campaign_lift where sync_id = ? order by scope desc",
            [SYNC],
        ).fetchall()
        kpi = con.execute(
            "select arm, members, converted from marts.kpi_campaign_conversion "
            "where sync_id = ? and send_as_of = ? order by arm",
            [SYNC, sent_night],
        ).fetchall()
        segments = con.execute("select count(*) from marts.kpi_segment_value").fetchone()[0]
        cohorts = con.execute("select count(*) from marts.kpi_retention_cohorts").fetchone()[0]
    assert in_staging == params["planted_orders_written"]
    assert [r[:2] for r in rows] == [("night", sent_night), ("all_nights", None)]
    (_, _, treated, held_out, t_conv, h_conv, low, high, share, is_srm, measured_as_of) = rows[0]
    p = planted[SYNC]
    assert (treated, held_out) == (int(p["treated"]), int(p["held_out"])) and held_out > 0
    assert share == 0.10 and is_srm is not None and measured_as_of == measured
    # every planted conversion is measured (organic orders may add to either arm)
    assert t_conv >= int(p["treated_planted_conversions"])
    assert h_conv >= int(p["held_out_planted_conversions"])
    assert low <= float(p["expected_conversion_lift_in_window"]) <= high
    assert kpi == [("held_out", held_out, h_conv), ("treated", treated, t_conv)]
    assert segments > 0 and cohorts > 0
