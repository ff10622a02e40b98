"""Campaign lift: treated vs held-out members of a sync, with confidence intervals and an SRM check.

Input: `marts.campaign_outcomes` (one row per send decision that reached a person or held them
out, with `has_ordered` and `order_revenue` in the attribution window). Only decisions whose
window has ended (`is_window_complete`) are compared; the held-out members (`is_holdout`) are the
control, the members sent to (`outcome = ok`) the treated.

Grain of `marts.campaign_lift` (rebuilt per run, like the other insight marts): one row per sync,
treatment arm and send night (`scope = 'night'`) and one per sync and arm over all its measured
nights (`scope = 'all_nights'`, `send_as_of` null), for syncs with at least one held-out and one
treated member. `arm` is null for a sync without A/B/n arms (one treatment); a sync with arms
(orchestration/activation/arms.py) has one row per arm, each against the same held-out members.

Statistics (no scipy at run time: the normal quantile is a constant, the rest is `math`):
- conversion (a revenue order in the window): difference of proportions treated − held out with
  Newcombe's hybrid score interval (Newcombe 1998, method 10: built from the two Wilson
  intervals), which keeps its coverage for small and rare proportions where Wald's does not;
- revenue per member (zero for members without an order): difference of means with Welch's
  standard error and Welch–Satterthwaite degrees of freedom; the t quantile comes from the
  Cornish–Fisher expansion of the normal quantile (3.159 for the exact 3.182 at 3 degrees of
  freedom, within 0.0002 from 10 up; the normal quantile is 1.960). When one arm's revenue has
  no variance (typically: no order among the held-out members) Welch's standard error would
  count the other arm's only, as if that arm's mean were known exactly; the interval is then
  Student's pooled-variance one (`revenue_lift_method = 'pooled'`, the reason in
  `revenue_lift_note`). With no variance in either arm, or an arm of one member, the interval
  is null with its reason;
- sample-ratio mismatch: Pearson's chi-square of the customers in the holdout and in each arm
  against their expected shares (the segment's holdout share, and the arms' shares of the rest:
  arms.expected_shares), k − 1 degrees of freedom for k groups, the p-value by the closed form
  of the chi-square survival function for whole degrees of freedom; flagged below
  `SRM_ALPHA` (0.001). A flagged row means the split is not what the hash assignment gives (sends
  lost or recorded twice, eligibility that depends on the arm): its lift is not to be trusted.
- ROI when a cost per contact is configured for the sync: incremental revenue (revenue lift per
  member × treated members) minus the cost of the treated contacts, over that cost.

The `all_nights` row pools the send decisions of every night as if independent. With a stable
holdout a customer is in the same arm every night and attribution windows of consecutive nights
overlap, so its interval is narrower than the truth when customers convert in a way that depends
on the customer; the per-night rows make no such assumption. Its SRM check counts distinct
customers, each once.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

from orchestration.activation.arms import ArmSpec
from orchestration.activation.arms import expected_shares as expected_arm_shares
from orchestration.engine import Connection, recreate_table, table_exists

Z95 = 1.959963984540054  # standard normal 0.975 quantile
SRM_ALPHA = 0.001
# the SRM group of a sync's one treatment (no arms); a reserved word, never an arm's name
TREATED = "treated"
OUTCOMES_TABLE = "marts.campaign_outcomes"
LIFT_TABLE = "marts.campaign_lift"


@dataclass(frozen=True)
class Arm:
    """Send decisions of one arm: members, members with a conversion, revenue sum and sum of
    squares (per member, zero for members without an order)."""

    n: int
    conversions: int
    revenue: float
    revenue_sq: float

    @property
    def rate(self) -> float:
        return self.conversions / self.n if self.n else math.nan

    @property
    def mean(self) -> float:
        return self.revenue / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance of revenue per member (0 for fewer than two members)."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.revenue_sq - self.revenue**2 / self.n) / (self.n - 1))


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(treated: Arm, control: Arm, z: float = Z95) -> tuple[float, float, float]:
    """Difference of proportions treated − control and its Newcombe hybrid score interval."""
    p1, p2 = treated.rate, control.rate
    l1, u1 = wilson(treated.conversions, treated.n, z)
    l2, u2 = wilson(control.conversions, control.n, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def t_quantile(df: float, z: float = Z95) -> float:
    """Student t quantile at the normal quantile `z`'s level, by the Cornish–Fisher expansion
    (Abramowitz & Stegun 26.7.5); the normal quantile for infinite or undefined df."""
    if not math.isfinite(df) or df <= 0:
        return z
    z3, z5, z7 = z**3, z**5, z**7
    return (
        z
        + (z3 + z) / (4 * df)
        + (5 * z5 + 16 * z3 + 3 * z) / (96 * df**2)
        + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df**3)
    )


def welch(treated: Arm, control: Arm, z: float = Z95) -> tuple[float, float, float, float]:
    """Difference of mean revenue per member, its Welch interval and Welch–Satterthwaite df."""
    d = treated.mean - control.mean
    a, b = treated.variance / treated.n, control.variance / control.n
    se = math.sqrt(a + b)
    if se == 0:
        return d, d, d, math.inf
    df = (a + b) ** 2 / (
        (a * a / (treated.n - 1) if treated.n > 1 else 0.0)
        + (b * b / (control.n - 1) if control.n > 1 else 0.0)
        or math.inf
    )
    q = t_quantile(df, z)
    return d, d - q * se, d + q * se, df


@dataclass(frozen=True)
class RevenueInterval:
    """Difference of mean revenue per member treated − control and its 95 % interval (None:
    not defined, `note` says why); `method` welch | pooled | None."""

    lift: float
    low: float | None
    high: float | None
    df: float | None
    method: str | None
    note: str | None


def revenue_interval(treated: Arm, control: Arm, z: float = Z95) -> RevenueInterval:
    """Welch's interval when both arms' revenue varies; Student's pooled-variance interval
    when only one does (an arm without variance — e.g. no held-out member ordered — would
    otherwise add nothing to the standard error); none when neither does or an arm has a single
    member (no variance can be estimated)."""
    d = treated.mean - control.mean
    if treated.n < 2 or control.n < 2:
        return RevenueInterval(d, None, None, None, None, "an arm has fewer than 2 members")
    vt, vc = treated.variance, control.variance
    if vt > 0 and vc > 0:
        _, low, high, df = welch(treated, control, z)
        return RevenueInterval(d, low, high, df, "welch", None)
    if vt == 0 and vc == 0:
        return RevenueInterval(
            d, None, None, None, None, "no revenue variance in either arm (e.g. no orders)"
        )
    df = treated.n + control.n - 2
    pooled = ((treated.n - 1) * vt + (control.n - 1) * vc) / df
    se = math.sqrt(pooled * (1 / treated.n + 1 / control.n))
    q = t_quantile(df, z)
    which = "held-out" if vc == 0 else "treated"
    return RevenueInterval(
        d, d - q * se, d + q * se, float(df), "pooled",
        f"no revenue variance among the {which} members: pooled-variance t interval",
    )  # fmt: skip


def chi2_sf(x: float, df: int) -> float:
    """Survival function of the chi-square distribution at whole degrees of freedom (closed
    form: Q(x; k + 2) = Q(x; k) + (x/2)^(k/2) e^(−x/2) / Γ(k/2 + 1))."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if x <= 0:
        return 1.0
    half = x / 2
    q, k = (math.erfc(math.sqrt(half)), 1) if df % 2 else (math.exp(-half), 2)
    while k < df:
        q += math.exp((k / 2) * math.log(half) - half - math.lgamma(k / 2 + 1))
        k += 2
    return min(1.0, q)


def srm_multi(
    counts: Mapping[str | None, int], expected: Mapping[str | None, float] | None
) -> tuple[float, float, int] | None:
    """Pearson chi-square of the customers per group (holdout: key None, each arm by name)
    against the expected shares, its p-value and degrees of freedom; None without expected
    shares, with a group that has no expected share (e.g. an arm since removed from the
    config), with a group expected to be empty, or without customers."""
    total = sum(counts.values())
    if not expected or total == 0 or set(counts) - set(expected):
        return None
    if any(not 0 < share < 1 for share in expected.values()):
        return None
    chi2 = sum(
        (counts.get(g, 0) - total * share) ** 2 / (total * share) for g, share in expected.items()
    )
    df = len(expected) - 1
    return chi2, chi2_sf(chi2, df), df


def srm(treated: int, held_out: int, holdout_share: float | None) -> tuple[float, float] | None:
    """Pearson chi-square (1 df) of the split against the configured holdout share and its
    p-value; None without a share strictly between 0 and 1 or without members."""
    total = treated + held_out
    if holdout_share is None or not 0 < holdout_share < 1 or total == 0:
        return None
    e_h, e_t = total * holdout_share, total * (1 - holdout_share)
    chi2 = (held_out - e_h) ** 2 / e_h + (treated - e_t) ** 2 / e_t
    return chi2, math.erfc(math.sqrt(chi2 / 2))


@dataclass(frozen=True)
class LiftRow:
    """One row of marts.campaign_lift (see the module doc and docs/insight.md)."""

    sync_id: str
    segment_name: str | None
    arm: str | None  # the A/B/n arm; None: the sync's one treatment
    scope: str  # night | all_nights
    send_as_of: dt.date | None
    nights: int
    treated: int
    held_out: int
    treated_conversions: int
    held_out_conversions: int
    treated_conversion_rate: float
    held_out_conversion_rate: float
    conversion_lift: float
    conversion_lift_low: float
    conversion_lift_high: float
    is_conversion_lift_significant: bool
    treated_revenue_per_member: float
    held_out_revenue_per_member: float
    revenue_lift_per_member: float
    revenue_lift_low: float | None
    revenue_lift_high: float | None
    revenue_lift_df: float | None
    revenue_lift_method: str | None
    revenue_lift_note: str | None
    incremental_conversions: float
    incremental_revenue: float
    incremental_revenue_low: float | None
    incremental_revenue_high: float | None
    cost_per_contact: float | None
    campaign_cost: float | None
    roi: float | None
    roi_low: float | None
    roi_high: float | None
    configured_holdout_share: float | None
    observed_holdout_share: float
    configured_arm_share: float | None
    observed_arm_share: float
    srm_customers_treated: int
    srm_customers_held_out: int
    srm_customers_total: int
    srm_df: int | None
    srm_chi_square: float | None
    srm_p_value: float | None
    is_srm: bool | None
    confidence_level: float
    measured_as_of: dt.date


def lift_row(
    *,
    sync_id: str,
    segment_name: str | None,
    scope: str,
    send_as_of: dt.date | None,
    nights: int,
    treated: Arm,
    control: Arm,
    srm_counts: tuple[int, int],
    holdout_share: float | None,
    cost_per_contact: float | None,
    measured_as_of: dt.date,
    srm_alpha: float = SRM_ALPHA,
    arm: str | None = None,
    group_counts: Mapping[str | None, int] | None = None,
    expected_shares: Mapping[str | None, float] | None = None,
) -> LiftRow:
    """The statistics of one comparison (both arms with at least one member). Without
    `group_counts` the SRM check is the two-group one of `srm_counts` (treated, held out) against
    `holdout_share`; with them (customers per group: None = holdout, else the arm's name) it is
    the check across all groups against `expected_shares`."""
    d, low, high = newcombe(treated, control)
    rev = revenue_interval(treated, control)
    r, r_low, r_high = rev.lift, rev.low, rev.high
    srm_t, srm_h = srm_counts
    group = arm or TREATED
    if group_counts is None:
        group_counts = {group: srm_t, None: srm_h}
        expected_shares = (
            {group: 1 - holdout_share, None: holdout_share} if holdout_share is not None else None
        )
    check = srm_multi(group_counts, expected_shares)
    srm_total = sum(group_counts.values())
    cost = None if cost_per_contact is None else cost_per_contact * treated.n
    roi = roi_low = roi_high = None
    if cost:
        roi = (r * treated.n - cost) / cost
        if r_low is not None and r_high is not None:
            roi_low, roi_high = ((x * treated.n - cost) / cost for x in (r_low, r_high))
    return LiftRow(
        sync_id=sync_id,
        segment_name=segment_name,
        arm=arm,
        scope=scope,
        send_as_of=send_as_of,
        nights=nights,
        treated=treated.n,
        held_out=control.n,
        treated_conversions=treated.conversions,
        held_out_conversions=control.conversions,
        treated_conversion_rate=treated.rate,
        held_out_conversion_rate=control.rate,
        conversion_lift=d,
        conversion_lift_low=low,
        conversion_lift_high=high,
        is_conversion_lift_significant=low > 0 or high < 0,
        treated_revenue_per_member=treated.mean,
        held_out_revenue_per_member=control.mean,
        revenue_lift_per_member=r,
        revenue_lift_low=r_low,
        revenue_lift_high=r_high,
        revenue_lift_df=rev.df if rev.df is not None and math.isfinite(rev.df) else None,
        revenue_lift_method=rev.method,
        revenue_lift_note=rev.note,
        incremental_conversions=d * treated.n,
        incremental_revenue=r * treated.n,
        incremental_revenue_low=None if r_low is None else r_low * treated.n,
        incremental_revenue_high=None if r_high is None else r_high * treated.n,
        cost_per_contact=cost_per_contact,
        campaign_cost=cost,
        roi=roi,
        roi_low=roi_low,
        roi_high=roi_high,
        configured_holdout_share=None if not expected_shares else expected_shares.get(None),
        observed_holdout_share=group_counts.get(None, 0) / srm_total if srm_total else math.nan,
        configured_arm_share=None if not expected_shares else expected_shares.get(group),
        observed_arm_share=group_counts.get(group, 0) / srm_total if srm_total else math.nan,
        srm_customers_treated=group_counts.get(group, 0),
        srm_customers_held_out=group_counts.get(None, 0),
        srm_customers_total=srm_total,
        srm_df=None if check is None else check[2],
        srm_chi_square=None if check is None else check[0],
        srm_p_value=None if check is None else check[1],
        is_srm=None if check is None else check[1] < srm_alpha,
        confidence_level=0.95,
        measured_as_of=measured_as_of,
    )


def _arm_sql(outcomes: str, per_night: bool, has_arm: bool = True) -> str:
    """Per-arm aggregates of the complete windows of `outcomes`, per sync and send night (or per
    sync over every night, send_night null); the held-out members' arm is null."""
    night = "as_of" if per_night else "cast(null as date)"
    arm = "case when is_holdout then null else arm end" if has_arm else "cast(null as varchar)"
    return f"""
        select sync_id, segment_name, {night} as send_night, is_holdout, {arm} as arm,
            count(*) as n,
            count(*) filter (where has_ordered) as conversions,
            coalesce(sum(cast(order_revenue as double)), 0) as revenue,
            coalesce(sum(cast(order_revenue as double) ^ 2), 0) as revenue_sq,
            count(distinct customer_id) as members,
            count(distinct as_of) as nights
        from {outcomes}
        where is_window_complete and (is_holdout or outcome = 'ok')
        group by 1, 2, 3, 4, 5
    """


def compute(
    con: Connection,
    measured_as_of: dt.date,
    holdout_shares: Mapping[str, float],
    cost_per_contact: Mapping[str, float] | None = None,
    outcomes: str = OUTCOMES_TABLE,
    srm_alpha: float = SRM_ALPHA,
    sync_arms: Mapping[str, Sequence[ArmSpec]] | None = None,
) -> list[LiftRow]:
    """Lift rows for every sync, arm and send night with treated and held-out members in
    `outcomes` (a campaign_outcomes shaped relation: sync_id, segment_name, as_of, customer_id,
    is_holdout, outcome, has_ordered, order_revenue, is_window_complete, and optionally arm).
    `holdout_shares`: segment → configured share; `sync_arms`: sync → its configured arms."""
    costs = dict(cost_per_contact or {})
    configured = dict(sync_arms or {})
    probe = con.execute(f"select * from {outcomes} limit 0")
    columns = {d[0] for d in probe.description}
    probe.fetchall()  # DuckDB refuses other work while a result is unfinished
    has_arm = "arm" in columns
    # (sync, segment, night) → {None: the holdout's aggregates, arm name (or TREATED): an arm's}
    groups: dict[tuple, dict[object, tuple]] = {}
    for sql in (_arm_sql(outcomes, True, has_arm), _arm_sql(outcomes, False, has_arm)):
        for sync_id, segment, as_of, is_holdout, arm, *agg in con.execute(sql).fetchall():
            key = None if is_holdout else (arm or TREATED)
            groups.setdefault((sync_id, segment, as_of), {})[key] = tuple(agg)
    rows = []
    for (sync_id, segment, as_of), arms in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][2] is None, kv[0][2] or dt.date.min)
    ):
        if None not in arms or len(arms) < 2:
            continue
        h = arms[None]
        # the pooled SRM counts each customer once: the same customers recur every night
        counts: dict[str | None, int] = {None: int(h[4])}
        counts.update({k: int(a[4]) for k, a in arms.items() if k is not None})
        share = holdout_shares.get(segment) if segment else None
        spec = configured.get(sync_id, ())
        expected = None
        if share is not None and spec:
            expected = expected_arm_shares(spec, share)
        elif share is not None:
            expected = {None: share, **{k: 1 - share for k in counts if k is not None}}
            if len(expected) > 2:  # arms in the data, none configured: no verdict
                expected = None
        for key in sorted(k for k in arms if k is not None):
            t = arms[key]
            rows.append(
                lift_row(
                    sync_id=sync_id,
                    segment_name=segment,
                    scope="night" if as_of is not None else "all_nights",
                    send_as_of=as_of,
                    nights=max(int(t[5]), int(h[5])),
                    treated=Arm(int(t[0]), int(t[1]), float(t[2]), float(t[3])),
                    control=Arm(int(h[0]), int(h[1]), float(h[2]), float(h[3])),
                    srm_counts=(int(t[4]), int(h[4])),
                    holdout_share=share,
                    cost_per_contact=costs.get(sync_id),
                    measured_as_of=measured_as_of,
                    srm_alpha=srm_alpha,
                    arm=None if key == TREATED else key,
                    group_counts=counts,
                    expected_shares=expected,
                )
            )
    return rows


_SQL_TYPES = {
    "str": "varchar",
    "str | None": "varchar",
    "dt.date | None": "date",
    "dt.date": "date",
    "int": "bigint",
    "int | None": "bigint",
    "float": "double",
    "float | None": "double",
    "bool": "boolean",
    "bool | None": "boolean",
}


def write(con: Connection, rows: list[LiftRow], table: str = LIFT_TABLE) -> int:
    """Replace `table` with `rows` (NaN written as null)."""
    columns = [(f.name, _SQL_TYPES[str(f.type)]) for f in fields(LiftRow)]
    schema = table.split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    recreate_table(con, table, ", ".join(f"{n} {t}" for n, t in columns))
    if rows:
        values = [
            [
                None if isinstance(v, float) and not math.isfinite(v) else v
                for v in asdict(row).values()
            ]
            for row in rows
        ]
        marks = ", ".join("?" for _ in columns)
        con.executemany(f"insert into {table} values ({marks})", values)
    return len(rows)


def has_outcomes(con: Connection, outcomes: str = OUTCOMES_TABLE) -> bool:
    return table_exists(con, *outcomes.split("."))


def run(con: Connection, as_of: dt.date, config: LiftSettings) -> list[LiftRow]:
    """Compute the lift of every sync from marts.campaign_outcomes with `config` (settings())
    and rewrite marts.campaign_lift (empty when the outcomes table does not exist yet)."""
    rows = []
    if has_outcomes(con):
        rows = compute(con, as_of, config.holdout_shares, config.cost_per_contact,
                       srm_alpha=config.srm_alpha, sync_arms=config.sync_arms)  # fmt: skip
    write(con, rows)
    return rows


@dataclass(frozen=True)
class LiftSettings:
    """What the lift report is configured with: each audience's holdout share (a segment's YAML;
    an action's YAML for its `action:<name>` audience, so action syncs get an SRM verdict), the cost
    per contact of each sync and the SRM threshold (dbt vars campaign_cost_per_contact and
    campaign_srm_alpha, C360_DBT_VARS merged in)."""

    holdout_shares: dict[str, float]
    cost_per_contact: dict[str, float]
    srm_alpha: float
    sync_arms: dict[str, tuple[ArmSpec, ...]] = field(default_factory=dict)


def settings() -> LiftSettings:
    """Read and check the settings; a ValueError names a bad var."""
    from orchestration.dbt_vars import project_vars
    from orchestration.insight.next_best_action_model import ACTION_PREFIX
    from orchestration.insight.next_best_action_model import load_all as load_actions
    from orchestration.segments.model import load_all

    dbt = project_vars()
    costs = dbt.get("campaign_cost_per_contact") or {}
    if not isinstance(costs, dict):
        raise ValueError("campaign_cost_per_contact: a mapping of sync name to cost per contact")
    for sync, cost in costs.items():
        if isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0:
            raise ValueError(f"campaign_cost_per_contact.{sync}: a number >= 0 (got {cost!r})")
    alpha = dbt.get("campaign_srm_alpha", SRM_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"campaign_srm_alpha: a number between 0 and 1 (got {alpha!r})")
    from orchestration.activation.syncs import load_all_syncs

    return LiftSettings(
        sync_arms={s.name: s.arms for s in load_all_syncs() if s.arms},
        holdout_shares={s.name: s.holdout for s in load_all()}
        | {f"{ACTION_PREFIX}{a.name}": a.holdout for a in load_actions()},
        cost_per_contact={str(k): float(v) for k, v in costs.items()},
        srm_alpha=float(alpha),
    )
