"""What the marketer report shows, read from the warehouse for one as_of.

One small frame per chart, already aggregated (the report embeds them: a million customers
become 30 histogram bins, not a million points). A frame is None when its table is missing,
holds another as_of, or has no rows; the report then says "no data yet" with that reason.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from orchestration.engine import Connection, table_exists

CLV_BINS = 30
MAX_COHORTS = 24  # the latest cohorts, each over its first MAX_COHORTS months


@dataclass
class Section:
    """One chart's data, or the reason there is none."""

    frame: pd.DataFrame | None
    empty_reason: str = ""
    facts: dict[str, str] = field(default_factory=dict)


@dataclass
class ReportData:
    """The data of every chart of the report for one as_of."""

    as_of: dt.date
    segment_sizes: Section
    clv: Section
    retention: Section
    lift: Section
    calibration: Section


def _exists(con: Connection, table: str) -> bool:
    schema, name = table.split(".")
    return table_exists(con, schema, name)


def _frame(con: Connection, sql: str, params: list) -> pd.DataFrame:
    return con.execute(sql, params).df()


def _section(
    con: Connection,
    as_of: dt.date,
    table: str,
    read: Callable[[Connection, dt.date, str], Section],
) -> Section:
    """`read`'s section from `table`, or the reason there is none while no run has built it."""
    if not _exists(con, table):
        return Section(None, f"{table} does not exist yet (no run has built it)")
    return read(con, as_of, table)


def _other_as_of(con, table: str, column: str, as_of: dt.date) -> Section:
    held = con.execute(f"select max({column}) from {table}").fetchone()[0]
    if held is None:
        return Section(None, f"{table} is empty")
    return Section(None, f"{table} holds {held}, not {as_of}: rerun that night to report it")


def segment_sizes(con: Connection, as_of: dt.date, table: str) -> Section:
    """Members per segment and as_of, every night up to as_of (audit.segment_stats)."""
    frame = _frame(
        con,
        f"select as_of, segment_name, members, holdout from {table} where as_of <= ? "
        "order by as_of, segment_name",
        [as_of],
    )
    if frame.empty:
        return Section(None, f"{table} has no night up to {as_of}")
    latest = frame[frame["as_of"] == frame["as_of"].max()]
    return Section(
        frame,
        facts={
            "nights": str(frame["as_of"].nunique()),
            "segments": str(frame["segment_name"].nunique()),
            "members on the latest night": f"{int(latest['members'].sum()):,}",
        },
    )


def clv(con: Connection, as_of: dt.date, table: str) -> Section:
    """Histogram of predicted 12-month value (CLV_BINS bins up to the 99th percentile, the top
    bin open-ended) of the customers with CLV traits in marts.customer_clv at as_of."""
    stats = con.execute(
        f"select count(predicted_value_12m), quantile_cont(predicted_value_12m, 0.99), "
        f"avg(p_alive), sum(predicted_value_12m), count(*) from {table} where as_of = ?",
        [as_of],
    ).fetchone()
    if stats[4] == 0:
        return _other_as_of(con, table, "as_of", as_of)
    if stats[0] == 0:
        return Section(None, f"no customer has CLV traits at {as_of} (see audit.clv_fits)")
    top = float(stats[1]) or 1.0
    width = top / CLV_BINS
    frame = _frame(
        con,
        f"""
        select least(floor(predicted_value_12m / ?), ?) as bin, count(*) as customers
        from {table} where as_of = ? and predicted_value_12m is not null
        group by 1 order by bin
        """,
        [width, CLV_BINS - 1, as_of],
    )
    frame["bin_start"] = frame["bin"] * width
    frame["bin_end"] = frame["bin_start"] + width
    return Section(
        frame[["bin_start", "bin_end", "customers"]],
        facts={
            "customers with CLV": f"{int(stats[0]):,} of {int(stats[4]):,}",
            "predicted 12-month value, total": f"{float(stats[3]):,.0f}",
            "mean P(alive)": f"{float(stats[2]):.3f}" if stats[2] is not None else "n/a",
            "top bin": f"{top:,.0f} and more (99th percentile)",
        },
    )


def retention(con: Connection, as_of: dt.date, table: str) -> Section:
    """Retention rate per first-order month and months since (marts.kpi_retention_cohorts)."""
    frame = _frame(
        con,
        f"""
        select strftime(cohort_month, '%Y-%m') as cohort, months_since_first_order,
            cohort_customers, active_customers, retention_rate, is_month_complete
        from {table}
        where as_of = ? and months_since_first_order < ? and cohort_month >= (
            select coalesce(max(cohort_month), date '1900-01-01') - interval {MAX_COHORTS - 1} month
            from {table} where as_of = ?)
        order by cohort, months_since_first_order
        """,
        [as_of, MAX_COHORTS, as_of],
    )
    if frame.empty:
        return _other_as_of(con, table, "as_of", as_of)
    later = frame[frame["months_since_first_order"] == 1]
    facts = {"cohorts": str(frame["cohort"].nunique())}
    if not later.empty:
        rate = later["active_customers"].sum() / later["cohort_customers"].sum()
        facts["ordered again the month after their first order"] = f"{rate:.1%}"
    return Section(frame, facts=facts)


def lift(con: Connection, as_of: dt.date, table: str) -> Section:
    """Conversion lift with its 95 % interval per sync (per sync and arm for an A/B/n sync, the
    label `sync / arm`), over all its measured nights."""
    # a campaign_lift written before A/B/n arms has no arm column
    has_arm = con.execute(
        "select count(*) from information_schema.columns where table_schema = 'marts' "
        "and table_name = 'campaign_lift' and column_name = 'arm'"
    ).fetchone()[0]
    label = "sync_id || coalesce(' / ' || arm, '')" if has_arm else "sync_id"
    frame = _frame(
        con,
        f"""
        select {label} as sync_id, segment_name, nights, treated,
            held_out, conversion_lift, conversion_lift_low, conversion_lift_high,
            is_conversion_lift_significant, is_srm, revenue_lift_per_member, roi
        from {table} where scope = 'all_nights' and measured_as_of = ? order by 1
        """,
        [as_of],
    )
    if frame.empty:
        held = con.execute(f"select count(*) from {table}").fetchone()[0]
        if held == 0:
            return Section(None, "no sync with a holdout has a complete attribution window yet")
        return _other_as_of(con, table, "measured_as_of", as_of)
    flagged = frame.loc[frame["is_srm"].fillna(False).astype(bool), "sync_id"].tolist()
    return Section(
        frame,
        facts={
            "syncs measured": str(len(frame)),
            "significant at 95 %": str(int(frame["is_conversion_lift_significant"].sum())),
            "sample-ratio mismatch (do not trust)": ", ".join(flagged) or "none",
        },
    )


def calibration(con: Connection, as_of: dt.date, table: str) -> Section:
    """The lead score's reliability table of the night's backtest (audit.lead_score_fits)."""
    row = con.execute(
        f"select reliability, roc_auc, brier, base_rate, mean_score, message from {table} "
        "where as_of = ? order by recorded_at desc limit 1",
        [as_of],
    ).fetchone()
    if row is None:
        return Section(None, f"no lead score fit recorded for {as_of}")
    if not row[0]:
        return Section(None, f"the night's backtest has no evaluation: {row[5] or 'refused'}")
    frame = pd.DataFrame(json.loads(row[0]))
    if frame.empty:
        return Section(None, "the night's backtest has an empty reliability table")
    return Section(
        frame[["bin", "customers", "mean_score", "observed_rate"]],
        facts={
            "ROC AUC": f"{row[1]:.3f}" if row[1] is not None else "n/a",
            "Brier score": f"{row[2]:.4f}" if row[2] is not None else "n/a",
            "observed vs mean score": (
                f"{row[3]:.3f} vs {row[4]:.3f}" if None not in (row[3], row[4]) else "n/a"
            ),
        },
    )


def collect(con: Connection, as_of: dt.date) -> ReportData:
    """Every chart's data for as_of."""
    return ReportData(
        as_of=as_of,
        segment_sizes=_section(con, as_of, "audit.segment_stats", segment_sizes),
        clv=_section(con, as_of, "marts.customer_clv", clv),
        retention=_section(con, as_of, "marts.kpi_retention_cohorts", retention),
        lift=_section(con, as_of, "marts.campaign_lift", lift),
        calibration=_section(con, as_of, "audit.lead_score_fits", calibration),
    )
