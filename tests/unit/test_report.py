"""The marketer report builder on a small warehouse: each chart's data from its mart, "no data
yet" with the reason for a missing, empty or other-night mart, the HTML self-contained (no
network), and no run for a date no nightly recorded."""

import datetime as dt
import json
import re

import duckdb
import pytest

from orchestration.insight import report, report_data
from orchestration.summary import NoRunForDate

AS_OF = dt.date(2026, 3, 10)
CUSTOMERS = 400


def build_warehouse(path, as_of: dt.date = AS_OF) -> None:
    """A warehouse holding one night (as_of) of every table the report reads."""
    con = duckdb.connect(str(path))
    for schema in ("audit", "marts"):
        con.execute(f"create schema if not exists {schema}")
    con.execute("create table audit.ingestion_batches as select ?::date as as_of", [as_of])
    con.execute(
        """
        create table audit.segment_stats as
        select (?::date - cast(n as integer))::date as as_of, s.name as segment_name,
            cast(100 * s.k + 10 * (5 - n) as bigint) as members, 0::bigint as entered,
            0::bigint as exited, cast(s.k * 10 as bigint) as holdout
        from range(5) as t(n), (values ('vip', 1), ('lapsing', 2), ('new', 3)) as s(name, k)
        """,
        [as_of],
    )
    # every 5th customer has no order: no CLV traits
    con.execute(
        f"""
        create table marts.customer_clv as
        select 'c' || i as customer_id,
            case when i % 5 = 0 then null else (i % 7) / 10.0 end as expected_purchases_90d,
            case when i % 5 = 0 then null else 1.0 - (i % 10) / 20.0 end as p_alive,
            case when i % 5 = 0 then null else (i % 97) * 3.0 end as predicted_value_12m,
            ?::date as as_of
        from range({CUSTOMERS}) as t(i)
        """,
        [as_of],
    )
    con.execute(
        """
        create table marts.kpi_retention_cohorts as
        select make_date(2025, 10 + c, 1) as cohort_month, m as months_since_first_order,
            make_date(2025, 10 + c, 1) + to_months(m) as activity_month,
            100::bigint as cohort_customers,
            cast(case when m = 0 then 100 else 40 - 5 * m end as bigint) as active_customers,
            case when m = 0 then 1.0 else (40 - 5 * m) / 100.0 end as retention_rate,
            1000.0 as revenue, 10.0 as revenue_per_cohort_customer,
            m < 3 - c as is_month_complete, ?::date as as_of
        from range(3) as a(c), range(3) as b(m) where m <= 2 - c
        """,
        [as_of],
    )
    con.execute(
        """
        create table marts.campaign_lift as
        select * from (values
            ('file_drop__vip', 'vip', 'all_nights', null::date, 10, 1659, 185, 0.031, 0.012,
             0.050, true, false, 1.5, null::double, ?::date),
            ('webhook__lapsing', 'lapsing', 'all_nights', null::date, 4, 400, 45, 0.004, -0.03,
             0.038, false, true, 0.1, 0.5, ?::date),
            ('file_drop__vip', 'vip', 'night', ?::date - 8, 1, 165, 18, 0.02, -0.05, 0.09, false,
             false, 1.0, null, ?::date)
        ) as t(sync_id, segment_name, scope, send_as_of, nights, treated, held_out,
               conversion_lift, conversion_lift_low, conversion_lift_high,
               is_conversion_lift_significant, is_srm, revenue_lift_per_member, roi,
               measured_as_of)
        """,
        [as_of] * 4,
    )
    reliability = [
        {"bin": b, "customers": 35, "mean_score": 0.02 * (b + 1), "observed_rate": 0.021 * (b + 1)}
        for b in range(10)
    ]
    con.execute(
        """
        create table audit.lead_score_fits as
        select ?::date as as_of, 'r1' as run_id, now()::timestamp as recorded_at,
            'ok' as status, null as message, ? as reliability, 0.81 as roc_auc,
            0.065 as brier, 0.08 as base_rate, 0.079 as mean_score
        """,
        [as_of, json.dumps(reliability)],
    )
    con.close()


@pytest.fixture()
def con(tmp_path):
    build_warehouse(tmp_path / "w.duckdb")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield con
    con.close()


def test_each_chart_reads_its_mart(con):
    data = report_data.collect(con, AS_OF)
    sizes = data.segment_sizes.frame
    assert len(sizes) == 15 and set(sizes["segment_name"]) == {"vip", "lapsing", "new"}
    assert data.segment_sizes.facts["members on the latest night"] == f"{100 + 200 + 300 + 150:,}"
    clv = data.clv.frame
    with_traits = con.execute(
        "select count(predicted_value_12m) from marts.customer_clv"
    ).fetchone()[0]
    assert clv["customers"].sum() == with_traits == CUSTOMERS * 4 // 5
    assert len(clv) <= report_data.CLV_BINS
    assert (clv["bin_end"] > clv["bin_start"]).all()
    assert data.retention.frame["cohort"].tolist()[:3] == ["2025-10"] * 3
    assert data.retention.facts["ordered again the month after their first order"] == "35.0%"
    lift = data.lift.frame
    assert lift["sync_id"].tolist() == ["file_drop__vip", "webhook__lapsing"]  # pooled rows only
    assert data.lift.facts["sample-ratio mismatch (do not trust)"] == "webhook__lapsing"
    assert len(data.calibration.frame) == 10
    assert data.calibration.facts["ROC AUC"] == "0.810"


def test_the_html_is_self_contained_with_one_spec_per_chart(con, tmp_path):
    path, items = report.write(con, AS_OF, root=tmp_path / "reports")
    assert path == tmp_path / "reports" / "2026-03-10" / "index.html"
    text = path.read_text()
    assert report.NO_DATA not in text
    # nothing is fetched: no external script, stylesheet or image
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?https?:""", text)
    assert "vegaEmbed" in text and text.count('class="chart"') == 5
    specs = json.loads(re.search(r"const specs = (\{.*?\});\n", text, re.S).group(1))
    assert (
        set(specs)
        == {c.key for c in items}
        == {
            "segment_sizes",
            "clv",
            "retention",
            "lift",
            "calibration",
        }
    )
    # the data travel inside the spec
    (lift_values,) = [
        v for v in specs["lift"]["datasets"].values() if "conversion_lift_low" in v[0]
    ]
    assert [v["conversion_lift_low"] for v in lift_values] == [0.012, -0.03]


def test_no_data_yet_with_the_reason(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema audit; create schema marts")
    con.execute("create table audit.ingestion_batches as select ?::date as as_of", [AS_OF])
    con.execute("create table marts.customer_clv (customer_id varchar, p_alive double, "
                "predicted_value_12m double, as_of date)")  # fmt: skip
    con.execute("insert into marts.customer_clv values ('c1', null, null, ?)", [AS_OF])
    out, items = report.write(con, AS_OF, root=tmp_path / "reports")
    con.close()
    reasons = {c.key: c.section.empty_reason for c in items if c.spec is None}
    assert set(reasons) == {"segment_sizes", "clv", "retention", "lift", "calibration"}
    assert reasons["clv"].startswith("no customer has CLV traits")
    assert reasons["lift"] == "marts.campaign_lift does not exist yet (no run has built it)"
    text = out.read_text()
    assert text.count(f"<strong>{report.NO_DATA}</strong>") == 5
    assert 'class="chart"' not in text


def test_a_mart_of_another_night_is_not_reported_as_this_one(con, tmp_path):
    later = AS_OF + dt.timedelta(days=1)
    con.execute("insert into audit.ingestion_batches values (?)", [later])
    data = report_data.collect(con, later)
    assert data.clv.frame is None
    assert data.clv.empty_reason.startswith("marts.customer_clv holds 2026-03-10, not 2026-03-11")
    assert data.calibration.frame is None
    # segment history up to the later night still includes the earlier nights
    assert data.segment_sizes.frame is not None


def test_no_run_for_a_date_no_nightly_recorded(con, tmp_path):
    with pytest.raises(NoRunForDate, match=r"^no run for 2026-01-01"):
        report.write(con, dt.date(2026, 1, 1), root=tmp_path / "reports")
    assert not (tmp_path / "reports").exists()
