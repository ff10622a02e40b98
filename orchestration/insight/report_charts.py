"""Altair (Vega-Lite) specs of the marketer report's charts, one function per chart.

Each takes the aggregated frame of orchestration/insight/report_data.py and returns a Vega-Lite
spec as a dict with its data inline, so the report file needs nothing but the Vega runtime.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

WIDTH = 640
HEIGHT = 260
# The Vega-Lite runtime the report inlines (orchestration/insight/report.py) is 5.x;
# these specs use nothing newer, so they are labelled for it.
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


def _spec(chart: alt.TopLevelMixin) -> dict:
    spec = chart.to_dict()
    spec["$schema"] = SCHEMA
    return spec


def _records(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]) or out[column].dtype == object:
            out[column] = out[column].astype(str)
    return out


def segment_sizes(frame: pd.DataFrame) -> dict:
    """Members per segment over the nights: one line per segment."""
    chart = (
        alt.Chart(_records(frame))
        .mark_line(point=True)
        .encode(
            # one tick per night at most: a night has no hours
            x=alt.X(
                "as_of:T",
                title="night (as_of)",
                axis=alt.Axis(format="%b %d", tickMinStep=86_400_000),
            ),
            y=alt.Y("members:Q", title="members"),
            color=alt.Color("segment_name:N", title="segment"),
            tooltip=["as_of:T", "segment_name:N", "members:Q", "holdout:Q"],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    return _spec(chart)


def clv_distribution(frame: pd.DataFrame) -> dict:
    """Customers per bin of predicted 12-month value."""
    chart = (
        alt.Chart(_records(frame))
        .mark_bar()
        .encode(
            x=alt.X("bin_start:Q", bin="binned", title="predicted 12-month value"),
            x2="bin_end:Q",
            y=alt.Y("customers:Q", title="customers"),
            tooltip=[
                alt.Tooltip("bin_start:Q", format=",.0f", title="from"),
                alt.Tooltip("bin_end:Q", format=",.0f", title="to"),
                "customers:Q",
            ],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    return _spec(chart)


def retention_cohorts(frame: pd.DataFrame) -> dict:
    """Heatmap: retention rate per first-order month (rows) and months since (columns)."""
    base = alt.Chart(_records(frame)).encode(
        x=alt.X(
            "months_since_first_order:O",
            title="months since the first order",
            axis=alt.Axis(labelAngle=0),
        ),
        y=alt.Y("cohort:O", title="first-order month"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "retention_rate:Q",
            title="retention",
            scale=alt.Scale(scheme="blues", domain=[0, 1]),
            legend=alt.Legend(format=".0%"),
        ),
        tooltip=[
            "cohort:O",
            "months_since_first_order:O",
            "cohort_customers:Q",
            "active_customers:Q",
            alt.Tooltip("retention_rate:Q", format=".1%"),
            "is_month_complete:N",
        ],
    )
    labels = base.mark_text(fontSize=9).encode(
        text=alt.Text("retention_rate:Q", format=".0%"),
        color=alt.condition("datum.retention_rate > 0.5", alt.value("white"), alt.value("black")),
    )
    rows = frame["cohort"].nunique()
    return _spec((cells + labels).properties(width=WIDTH, height=max(60, 18 * rows)))


def lift_intervals(frame: pd.DataFrame) -> dict:
    """Conversion lift per sync with its 95 % interval; a rule at zero."""
    data = _records(frame)
    base = alt.Chart(data).encode(y=alt.Y("sync_id:N", title="sync"))
    interval = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("conversion_lift_low:Q", title="conversion lift, treated − held out (95 % CI)"),
        x2="conversion_lift_high:Q",
    )
    point = base.mark_point(filled=True, size=90).encode(
        x=alt.X("conversion_lift:Q", axis=alt.Axis(format="+.1%")),
        color=alt.Color(
            "is_conversion_lift_significant:N",
            title="interval excludes 0",
            scale=alt.Scale(domain=[True, False], range=["#1a7f37", "#888888"]),
        ),
        tooltip=[
            "sync_id:N",
            "segment_name:N",
            "nights:Q",
            "treated:Q",
            "held_out:Q",
            alt.Tooltip("conversion_lift:Q", format="+.2%"),
            alt.Tooltip("conversion_lift_low:Q", format="+.2%"),
            alt.Tooltip("conversion_lift_high:Q", format="+.2%"),
            "is_srm:N",
        ],
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    height = max(60, 36 * len(frame))
    return _spec((zero + interval + point).properties(width=WIDTH, height=height))


def lead_score_calibration(frame: pd.DataFrame) -> dict:
    """Observed conversion vs mean score per score bin, against the diagonal."""
    top = float(max(frame["mean_score"].max(), frame["observed_rate"].max(), 0.01))
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, top], "y": [0.0, top]}))
        .mark_line(strokeDash=[4, 4], color="#888888")
        .encode(x="x:Q", y="y:Q")
    )
    points = (
        alt.Chart(_records(frame))
        .mark_line(point=True)
        .encode(
            x=alt.X("mean_score:Q", title="mean lead score in the bin", axis=alt.Axis(format="%")),
            y=alt.Y("observed_rate:Q", title="observed conversion", axis=alt.Axis(format="%")),
            tooltip=[
                "bin:Q",
                "customers:Q",
                alt.Tooltip("mean_score:Q", format=".3f"),
                alt.Tooltip("observed_rate:Q", format=".3f"),
            ],
        )
    )
    return _spec((diagonal + points).properties(width=WIDTH, height=HEIGHT))
