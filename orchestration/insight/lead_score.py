"""Lead score (PQL/MQL): logistic regression on behaviour before a cut-off → conversion after it.

Conversion is a revenue order (paid, shipped, delivered) in the `window_days` after a cut-off.
The population is the customers who can order: those with a shop account created by the cut-off
(a customer known only to CRM, loyalty or the web cannot order in the sources c360 reads, so there
is nothing to learn about them; their score is null). Features per customer at a cut-off, from
the warehouse (SQL, nothing after the cut-off):

| feature | model input |
| --- | --- |
| web/app session starts, last 30 days | log1p(count) |
| product views, last 30 days | log1p(count) |
| cart adds, last 30 days | log1p(count) |
| email clicks, last 90 days | log1p(count) |
| revenue orders, last 365 days | log1p(count) |
| days since the last revenue order | min(days, 365) / 365; 1 without an order |
| loyalty tier | 0 none, 1 bronze, 2 silver, 3 gold, 4 platinum |

standardized (mean 0, sd 1 on the training sample) and fitted with scikit-learn's
LogisticRegression (L2, C = 1). When a fit is due (orchestration/insight/refit.py: weekly by
default; W = window_days, E = end of that night's as_of):

- evaluation (backtest): fit on features at E − 2W with the label in (E − 2W, E − W], score the
  features at E − W and compare with the label in (E − W, E]: ROC AUC, Brier score and a
  reliability table (equal-count bins: mean predicted vs observed conversion);
- scoring model: refit on features at E − W with the label in (E − W, E].

Every night scores the features at its own E with the scoring model in use.

Grains:
- marts.customer_lead_score: one row per customer of customer_360: lead_score (probability of a
  revenue order in the next W days), lead_tier (pql / mql / cold by the thresholds in
  dbt_project/insight/lead_score.yml), top_reasons (the largest positive contributions
  coefficient × standardized value, in plain words) and reason_codes (their feature names).
- audit.lead_score_fits: one row per as_of (a rerun replaces it) with the evaluation, the
  coefficients, the thresholds, whether the fit was refused and the as_of the fit in use was made
  at (`fitted_as_of`: a night that re-uses a fit copies its evaluation and coefficients).

A degenerate fit (a training window without converters or without non-converters, or fewer than
`min_positives` of either) is refused with a message; the last good scores stay in the mart.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from orchestration.engine import Connection, table_exists
from orchestration.insight import refit
from orchestration.insight.activity import EMAIL_ENGAGEMENT, ORDERS, WEB_EVENTS
from orchestration.insight.traits_table import replace_traits
from orchestration.paths import dbt_project_dir
from orchestration.warehouse import create_table

TRAITS_TABLE = "marts.customer_lead_score"
FIT_TABLE = "audit.lead_score_fits"
TIER_NAMES = ("bronze", "silver", "gold", "platinum")  # loyalty tier rank 1..4
FEATURES = (
    "web_sessions_30d",
    "product_views_30d",
    "cart_adds_30d",
    "email_clicks_90d",
    "orders_365d",
    "years_since_last_order",
    "loyalty_tier_rank",
)
COUNT_FEATURES = FEATURES[:5]


def config_path() -> Path:
    return dbt_project_dir() / "insight" / "lead_score.yml"


@dataclass(frozen=True)
class LeadScoreConfig:
    """Windows and thresholds (dbt_project/insight/lead_score.yml)."""

    window_days: int = 28
    pql: float = 0.30
    mql: float = 0.10
    top_reasons: int = 3
    min_positives: int = 10
    calibration_bins: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.mql <= self.pql <= 1:
            raise ValueError(
                f"lead score tiers need 0 < mql <= pql <= 1: mql={self.mql} pql={self.pql}"
            )
        if self.window_days < 1 or self.min_positives < 1 or self.calibration_bins < 1:
            raise ValueError("window_days, min_positives and calibration_bins must be positive")


def load_config(path: Path | None = None) -> LeadScoreConfig:
    """The YAML config; defaults for a missing file or key."""
    import yaml

    path = config_path() if path is None else Path(path)
    if not path.exists():
        return LeadScoreConfig()
    raw = yaml.safe_load(path.read_text()) or {}
    tiers = raw.pop("tiers", {}) or {}
    known = {k: v for k, v in raw.items() if k in LeadScoreConfig.__dataclass_fields__}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{path}: unknown lead score settings {unknown}")
    return LeadScoreConfig(**known, **{k: float(v) for k, v in tiers.items()})


class FitRefused(ValueError):
    """A training window the model cannot learn from (one class, too few of either)."""


# ---------------------------------------------------------------------------------------------
# Data (SQL, nothing after the cut-off)
# ---------------------------------------------------------------------------------------------

_FEATURES_SQL = f"""
with id_map as (
    select source, entity, source_record_id, record_key, customer_id from marts.customer_id_map
),
population as (
    select distinct id_map.customer_id
    from staging.stg_shop__customers as shop
    inner join id_map
        on id_map.source = 'shop' and id_map.entity = 'customers'
        and shop.shop_customer_id = id_map.source_record_id
    where shop.created_at <= $cutoff
),
web as (
    select
        id_map.customer_id,
        count(*) filter (where events.event_name in ('session_start', 'app_open'))
            as web_sessions_30d,
        count(*) filter (where events.event_name = 'product_viewed') as product_views_30d,
        count(*) filter (where events.event_name = 'cart_add') as cart_adds_30d
    from {WEB_EVENTS} as events
    inner join id_map on id_map.source = 'web' and events.anonymous_id = id_map.source_record_id
    where events.occurred_at <= $cutoff and events.occurred_at > $cutoff - interval 30 day
    group by id_map.customer_id
),
customer_emails as (
    select distinct id_map.customer_id, records.email_normalized
    from intermediate.int_identity__records as records
    inner join id_map on records.record_key = id_map.record_key
    where records.email_normalized is not null
),
email as (
    select customer_emails.customer_id, count(*) as email_clicks_90d
    from {EMAIL_ENGAGEMENT} as engagement
    inner join customer_emails on engagement.email_normalized = customer_emails.email_normalized
    where engagement.event_type = 'clicked'
        and engagement.occurred_at <= $cutoff
        and engagement.occurred_at > $cutoff - interval 90 day
    group by customer_emails.customer_id
),
orders as (
    select
        id_map.customer_id,
        count(*) filter (where orders.ordered_at > $cutoff - interval 365 day) as orders_365d,
        max(orders.ordered_at) as last_ordered_at
    from {ORDERS} as orders
    inner join id_map
        on id_map.source = 'shop' and id_map.entity = 'customers'
        and orders.shop_customer_id = id_map.source_record_id
    where orders.is_revenue and orders.ordered_at <= $cutoff
    group by id_map.customer_id
),
loyalty as (
    select
        id_map.customer_id,
        max(case lower(members.loyalty_tier)
            when 'bronze' then 1 when 'silver' then 2 when 'gold' then 3
            when 'platinum' then 4 else 0 end) as loyalty_tier_rank
    from staging.stg_loyalty__members as members
    inner join id_map
        on id_map.source = 'loyalty' and members.loyalty_member_id = id_map.source_record_id
    group by id_map.customer_id
)
select
    population.customer_id,
    coalesce(web.web_sessions_30d, 0) as web_sessions_30d,
    coalesce(web.product_views_30d, 0) as product_views_30d,
    coalesce(web.cart_adds_30d, 0) as cart_adds_30d,
    coalesce(email.email_clicks_90d, 0) as email_clicks_90d,
    coalesce(orders.orders_365d, 0) as orders_365d,
    date_diff('second', orders.last_ordered_at, $cutoff) / 86400.0 as days_since_last_order,
    coalesce(loyalty.loyalty_tier_rank, 0) as loyalty_tier_rank
from population
left join web on population.customer_id = web.customer_id
left join email on population.customer_id = email.customer_id
left join orders on population.customer_id = orders.customer_id
left join loyalty on population.customer_id = loyalty.customer_id
order by population.customer_id
"""

_LABELS_SQL = f"""
select distinct id_map.customer_id
from {ORDERS} as orders
inner join marts.customer_id_map as id_map
    on id_map.source = 'shop' and id_map.entity = 'customers'
    and orders.shop_customer_id = id_map.source_record_id
where orders.is_revenue and orders.ordered_at > $start and orders.ordered_at <= $stop
"""


def load_features(con: Connection, cutoff: dt.datetime) -> pd.DataFrame:
    """Raw behaviour per customer of the population at `cutoff` (index customer_id): the counts,
    days_since_last_order (NaN without an order) and loyalty_tier_rank."""
    raw = con.execute(_FEATURES_SQL, {"cutoff": cutoff}).df().set_index("customer_id")
    for name in (*COUNT_FEATURES, "loyalty_tier_rank"):
        raw[name] = raw[name].astype(np.int64)
    raw["days_since_last_order"] = raw["days_since_last_order"].astype(float)
    return raw


def load_converted(con: Connection, start: dt.datetime, stop: dt.datetime) -> set[str]:
    """Customers with a revenue order in (start, stop]."""
    rows = con.execute(_LABELS_SQL, {"start": start, "stop": stop}).fetchall()
    return {r[0] for r in rows}


def design(raw: pd.DataFrame) -> pd.DataFrame:
    """Raw behaviour → the model's inputs (columns FEATURES)."""
    x = pd.DataFrame(index=raw.index)
    for name in COUNT_FEATURES:
        x[name] = np.log1p(raw[name].to_numpy(dtype=float))
    days = raw["days_since_last_order"].to_numpy(dtype=float)
    x["years_since_last_order"] = np.minimum(np.nan_to_num(days, nan=365.0), 365.0) / 365.0
    x["loyalty_tier_rank"] = raw["loyalty_tier_rank"].to_numpy(dtype=float)
    return x[list(FEATURES)]


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadModel:
    """Logistic regression on standardized inputs: p = sigmoid(intercept + Σ coef × z),
    z = (x − mean) / scale, with mean and scale from the training sample."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    customers: int
    positives: int

    def standardize(self, x: pd.DataFrame) -> np.ndarray:
        return (x[list(FEATURES)].to_numpy(dtype=float) - self.mean) / self.scale

    def contributions(self, x: pd.DataFrame) -> np.ndarray:
        """coef × standardized value per customer and feature (log-odds against the average)."""
        return self.standardize(x) * self.coef

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        logit = self.intercept + self.contributions(x).sum(axis=1)
        return 1.0 / (1.0 + np.exp(-logit))

    def coefficients(self) -> dict[str, float]:
        return {n: float(c) for n, c in zip(FEATURES, self.coef, strict=True)}

    def raw_coefficients(self) -> tuple[float, dict[str, float]]:
        """Intercept and coefficients per unit of the unstandardized input (comparable with a
        model written on the raw inputs, such as the generator's planted one)."""
        per_unit = self.coef / self.scale
        return (
            float(self.intercept - np.sum(per_unit * self.mean)),
            {n: float(c) for n, c in zip(FEATURES, per_unit, strict=True)},
        )


def fit(x: pd.DataFrame, converted, min_positives: int = 10) -> LeadModel:
    """Fit on inputs `x` (columns FEATURES) and labels `converted` (bool per row). Raises
    FitRefused for a window with one class or fewer than `min_positives` of either."""
    from sklearn.linear_model import LogisticRegression  # heavy import, only when fitting

    y = np.asarray(converted, dtype=bool)
    pos, n = int(y.sum()), len(y)
    if n == 0:
        raise FitRefused("no customers with a shop account at the training cut-off")
    if pos == 0 or pos == n:
        which = "no customer converted" if pos == 0 else "every customer converted"
        raise FitRefused(f"single class in the training window: {which} ({n:,} customers)")
    if min(pos, n - pos) < min_positives:
        raise FitRefused(
            f"too few {'converters' if pos < n - pos else 'non-converters'} in the training "
            f"window: {min(pos, n - pos):,} of {n:,} customers (at least {min_positives})"
        )
    values = x[list(FEATURES)].to_numpy(dtype=float)
    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant input: coefficient 0, no division by 0
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit((values - mean) / scale, y)
    return LeadModel(mean, scale, model.coef_[0].astype(float), float(model.intercept_[0]), n, pos)


@dataclass(frozen=True)
class Evaluation:
    """Scores of a model on a later window: ROC AUC, Brier score, reliability table."""

    customers: int
    positives: int
    roc_auc: float
    brier: float
    base_rate: float
    mean_score: float
    reliability: list[dict] = field(default_factory=list)

    def reliability_markdown(self) -> str:
        lines = ["| bin | customers | mean score | converted |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {r['bin']} | {r['customers']} | {r['mean_score']:.3f} | {r['observed_rate']:.3f} |"
            for r in self.reliability
        ]
        return "\n".join(lines)


def evaluate(score, converted, bins: int = 10) -> Evaluation:
    """ROC AUC (nan with one class), Brier score and a reliability table of `bins` equal-count
    bins of the score (mean score vs observed conversion rate per bin)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    p = np.asarray(score, dtype=float)
    y = np.asarray(converted, dtype=bool)
    both = 0 < y.sum() < len(y)
    auc = float(roc_auc_score(y, p)) if both else math.nan
    brier = float(brier_score_loss(y, p)) if len(y) else math.nan
    table = []
    if len(y):
        codes = pd.qcut(pd.Series(p).rank(method="first"), min(bins, len(y)), labels=False)
        frame = pd.DataFrame({"bin": codes.to_numpy(), "p": p, "y": y})
        for b, part in frame.groupby("bin", sort=True):
            table.append({"bin": int(b) + 1, "customers": len(part),
                          "mean_score": round(float(part["p"].mean()), 6),
                          "observed_rate": round(float(part["y"].mean()), 6)})  # fmt: skip
    return Evaluation(
        customers=len(y),
        positives=int(y.sum()),
        roc_auc=auc,
        brier=brier,
        base_rate=float(y.mean()) if len(y) else math.nan,
        mean_score=float(p.mean()) if len(y) else math.nan,
        reliability=table,
    )


# ---------------------------------------------------------------------------------------------
# Tiers and reasons
# ---------------------------------------------------------------------------------------------


def tiers(score: np.ndarray, config: LeadScoreConfig) -> np.ndarray:
    """'pql' from config.pql, 'mql' from config.mql, else 'cold'."""
    s = np.asarray(score, dtype=float)
    return np.where(s >= config.pql, "pql", np.where(s >= config.mql, "mql", "cold"))


def _plural(n: pd.Series, one: str, many: str) -> pd.Series:
    return n.astype(str) + " " + np.where(n == 1, one, many)


def _feature_text(name: str, raw: pd.DataFrame) -> pd.Series:
    """Plain words for one feature of each customer of `raw`."""
    if name == "web_sessions_30d":
        return _plural(raw[name], "web or app visit", "web or app visits") + " in the last 30 days"
    if name == "product_views_30d":
        return "viewed " + _plural(raw[name], "product", "products") + " in the last 30 days"
    if name == "cart_adds_30d":
        return "added to cart " + _plural(raw[name], "time", "times") + " in the last 30 days"
    if name == "email_clicks_90d":
        return "clicked " + _plural(raw[name], "email", "emails") + " in the last 90 days"
    if name == "orders_365d":
        return _plural(raw[name], "order", "orders") + " in the last 12 months"
    if name == "years_since_last_order":
        days = raw["days_since_last_order"]
        whole = days.fillna(0).astype(np.int64)
        text = np.where(
            days.isna(), "no order yet",
            np.where(whole == 0, "last order today",
                     "last order " + _plural(whole, "day", "days") + " ago"),
        )  # fmt: skip
        return pd.Series(text, index=raw.index)
    rank = raw["loyalty_tier_rank"].to_numpy(dtype=np.int64)
    names = np.array(("no", *TIER_NAMES), dtype=object)
    return pd.Series(names[np.clip(rank, 0, 4)] + " loyalty tier", index=raw.index)


def reason_texts(raw: pd.DataFrame) -> pd.DataFrame:
    """Plain words for each feature of each customer (columns FEATURES)."""
    return pd.DataFrame({name: _feature_text(name, raw) for name in FEATURES}, index=raw.index)


def _joined(parts: np.ndarray, kept: np.ndarray, sep: str) -> list:
    """Per row, the kept parts (a prefix of each row) joined with `sep`; None when none is."""
    out = np.where(kept[:, 0], parts[:, 0], None).astype(object)
    for j in range(1, parts.shape[1]):
        more = kept[:, j]
        out[more] = out[more] + sep + parts[more, j]
    return out.tolist()


def top_reasons(contributions: np.ndarray, raw: pd.DataFrame, k: int) -> tuple[list, list]:
    """Per customer (a row of `raw`, the raw features): the texts and feature names of the (at
    most k) largest positive contributions, largest first, joined with '; ' and ','. Words are
    built only for the features chosen (at most k of the seven per customer)."""
    n = len(raw)
    if n == 0:
        return [], []
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    # sorted largest first: a customer's positive contributions are a prefix of its row
    positive = np.take_along_axis(contributions, order, axis=1) > 0
    words = np.full(order.shape, None, dtype=object)
    for j, name in enumerate(FEATURES):
        chosen = (order == j) & positive  # at most one rank per row
        rows = chosen.any(axis=1)
        if rows.any():
            words[chosen] = _feature_text(name, raw[rows]).to_numpy(dtype=object)
    codes = np.array(FEATURES, dtype=object)[order]
    return _joined(words, positive, "; "), _joined(codes, positive, ",")


# ---------------------------------------------------------------------------------------------
# Run: evaluation, scoring, tables
# ---------------------------------------------------------------------------------------------


def as_of_end(as_of: dt.date) -> dt.datetime:
    """Last instant of the as_of day (dbt's as_of_end())."""
    return dt.datetime.combine(as_of, dt.time(23, 59, 59))


@dataclass(frozen=True)
class LeadScoreRun:
    status: str  # 'ok' | 'refused'
    message: str
    evaluation: Evaluation | None  # of the fit in use (tonight's or the re-used one's)
    model: LeadModel | None  # the scoring model (None when refused)
    rows: int
    tier_counts: dict[str, int]
    seconds: float
    fitted_as_of: dt.date | None = None  # the as_of the scoring model was fitted at
    reused: bool = False  # scored with an earlier night's fit (insight/refit.py)

    def metadata(self) -> dict:
        """Plain values for the asset's metadata."""
        out: dict = {"status": self.status, "message": self.message,
                     "seconds": round(self.seconds, 2), "refitted": not self.reused,
                     "fitted_as_of": str(self.fitted_as_of)}  # fmt: skip
        e = self.evaluation
        if e is not None:
            out.update(
                eval_customers=e.customers,
                eval_converted=e.positives,
                eval_roc_auc=None if math.isnan(e.roc_auc) else round(e.roc_auc, 4),
                eval_brier=round(e.brier, 5),
                eval_base_rate=round(e.base_rate, 4),
                eval_mean_score=round(e.mean_score, 4),
            )
        if self.model is not None:
            out["train_customers"] = self.model.customers
            out["train_converted"] = self.model.positives
            for name, value in self.model.coefficients().items():
                out[f"coef_{name}"] = round(value, 4)
        for tier, count in self.tier_counts.items():
            out[f"customers_{tier}"] = count
        return out


FIT_COLUMNS = """
    as_of date not null, run_id varchar not null, recorded_at timestamp not null,
    status varchar not null, message varchar, window_days integer,
    cutoff_train timestamp, cutoff_eval timestamp,
    backtest_customers bigint, backtest_converted bigint,
    eval_customers bigint, eval_converted bigint, roc_auc double, brier double,
    base_rate double, mean_score double, reliability varchar,
    train_customers bigint, train_converted bigint, intercept double,
    coefficients varchar, feature_means varchar, feature_scales varchar,
    pql_threshold double, mql_threshold double,
    customers_scored bigint, pql bigint, mql bigint, cold bigint,
    duration_seconds double
"""


def ensure_tables(con: Connection) -> None:
    create_table(con, FIT_TABLE, FIT_COLUMNS)
    refit.ensure_columns(con, FIT_TABLE)
    con.execute("create schema if not exists marts")


def _empty_traits(con: Connection, as_of: dt.date) -> None:
    con.execute(
        f"""
        create table {TRAITS_TABLE} as
        select customer_id, cast(null as double) as lead_score, cast(null as varchar) as lead_tier,
            cast(null as varchar) as top_reasons, cast(null as varchar) as reason_codes,
            cast(? as date) as as_of
        from marts.customer_360 order by customer_id
        """,
        [as_of],
    )


def fit_settings(cfg: LeadScoreConfig) -> dict:
    """What a fit depends on besides the data (refit.settings_key): the features, the window and
    the evaluation's settings; the tier thresholds only act on scores."""
    return {"model": "logistic/l2/C=1", "features": FEATURES, "window_days": cfg.window_days,
            "min_positives": cfg.min_positives, "calibration_bins": cfg.calibration_bins}  # fmt: skip


# the columns of a fit row that describe the fit (copied when a later night re-uses it)
_FIT_FIELDS = (
    "cutoff_train", "cutoff_eval", "backtest_customers", "backtest_converted", "eval_customers",
    "eval_converted", "roc_auc", "brier", "base_rate", "mean_score", "reliability",
    "train_customers", "train_converted", "intercept", "coefficients", "feature_means",
    "feature_scales",
)  # fmt: skip


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _recorded(row: dict) -> tuple[LeadModel, Evaluation | None]:
    """The scoring model and the evaluation of a recorded fit row."""
    means, scales, coefs = (json.loads(row[c]) for c in
                            ("feature_means", "feature_scales", "coefficients"))  # fmt: skip
    model = LeadModel(
        mean=np.array([means[f] for f in FEATURES], dtype=float),
        scale=np.array([scales[f] for f in FEATURES], dtype=float),
        coef=np.array([coefs[f] for f in FEATURES], dtype=float),
        intercept=float(row["intercept"]),
        customers=int(row["train_customers"]),
        positives=int(row["train_converted"]),
    )
    evaluation = None
    if row["eval_customers"] is not None:
        evaluation = Evaluation(
            customers=int(row["eval_customers"]), positives=int(row["eval_converted"]),
            roc_auc=_nan(row["roc_auc"]), brier=_nan(row["brier"]),
            base_rate=_nan(row["base_rate"]), mean_score=_nan(row["mean_score"]),
            reliability=json.loads(row["reliability"]) if row["reliability"] else [],
        )  # fmt: skip
    return model, evaluation


def _fitted(
    con: Connection, end: dt.datetime, cfg: LeadScoreConfig
) -> tuple[dict, LeadModel | None, Evaluation | None, list[str]]:
    """Backtest, evaluate and refit on the latest window: (the fit row's fields, the scoring model
    or None when refused, the evaluation, messages)."""
    w = dt.timedelta(days=cfg.window_days)
    t1, t2 = end - 2 * w, end - w
    x1, x2 = design(load_features(con, t1)), design(load_features(con, t2))
    y1 = x1.index.isin(load_converted(con, t1, t2))
    y2 = x2.index.isin(load_converted(con, t2, end))
    messages = []
    backtest = evaluation = None
    try:
        backtest = fit(x1, y1, cfg.min_positives)
        evaluation = evaluate(backtest.predict(x2), y2, cfg.calibration_bins)
        if math.isnan(evaluation.roc_auc):
            messages.append("evaluation window has a single class: ROC AUC undefined")
    except FitRefused as exc:
        messages.append(f"evaluation skipped: {exc}")
    model = None
    try:
        model = fit(x2, y2, cfg.min_positives)
    except FitRefused as exc:
        messages.insert(0, f"lead score fit refused: {exc}; last good scores kept")

    def num(v):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    e, m, b = evaluation, model, backtest
    values = (
        t1, t2, b.customers if b else None, b.positives if b else None,
        e.customers if e else None, e.positives if e else None,
        num(e.roc_auc) if e else None, num(e.brier) if e else None,
        num(e.base_rate) if e else None, num(e.mean_score) if e else None,
        json.dumps(e.reliability) if e else None,
        m.customers if m else None, m.positives if m else None, m.intercept if m else None,
        json.dumps(m.coefficients()) if m else None,
        json.dumps(dict(zip(FEATURES, m.mean.tolist(), strict=True))) if m else None,
        json.dumps(dict(zip(FEATURES, m.scale.tolist(), strict=True))) if m else None,
    )  # fmt: skip
    return dict(zip(_FIT_FIELDS, values, strict=True)), model, evaluation, messages


def run(
    con: Connection,
    as_of: dt.date,
    run_id: str,
    config: LeadScoreConfig | None = None,
    refit_config: refit.RefitConfig | None = None,
) -> LeadScoreRun:
    """Score every customer with a shop account at as_of with the fit in use, replace
    marts.customer_lead_score and record the run in audit.lead_score_fits (a rerun at the same
    as_of replaces its row). The fit in use is tonight's when one is due (insight/refit.py:
    backtest, evaluate, refit on the latest window), else the last accepted one. A refused fit
    leaves the last accepted fit in use, however old; without one the last good scores are kept
    (the mart is created with null scores only when it does not exist yet)."""
    cfg = load_config() if config is None else config
    started = time.perf_counter()
    end = as_of_end(as_of)
    ensure_tables(con)
    key = refit.settings_key(fit_settings(cfg))
    rcfg = refit.load_config() if refit_config is None else refit_config
    kept = refit.reusable_fit(con, FIT_TABLE, as_of, key, "status = 'ok'", rcfg)
    refused = False
    if kept is not None:
        fields = {k: kept[k] for k in _FIT_FIELDS}
        model, evaluation = _recorded(kept)
        messages: list[str] = []
        fitted_as_of = kept["fitted_as_of"]
    else:
        fields, model, evaluation, messages = _fitted(con, end, cfg)
        fitted_as_of, refused = as_of, model is None
        last = (
            None
            if model is not None
            else refit.reusable_fit(con, FIT_TABLE, as_of, key, "status = 'ok'", rcfg, any_age=True)
        )
        if last is not None:  # a refused fit leaves the last accepted one in use
            fields = {k: last[k] for k in _FIT_FIELDS}
            model, evaluation = _recorded(last)
            fitted_as_of = last["fitted_as_of"]
            messages[0] = messages[0].replace(
                "last good scores kept", f"the fit of {fitted_as_of} stays in use"
            )
    status = "refused" if kept is None and refused else "ok"
    message = "; ".join(messages) or "ok"

    tier_counts: dict[str, int] = {}
    con.execute("begin")
    try:
        scored = None
        if model is not None:
            raw_now = load_features(con, end)
            x_now = design(raw_now)
            score = model.predict(x_now)
            tier = tiers(score, cfg)
            reasons, codes = top_reasons(model.contributions(x_now), raw_now, cfg.top_reasons)
            traits = pd.DataFrame(
                {"customer_id": x_now.index.to_numpy(), "lead_score": score, "lead_tier": tier,
                 "top_reasons": pd.Series(reasons, dtype=object),
                 "reason_codes": pd.Series(codes, dtype=object)}
            )  # fmt: skip
            tier_counts = {t: int((tier == t).sum()) for t in ("pql", "mql", "cold")}
            scored = len(x_now)
            replace_traits(
                con,
                TRAITS_TABLE,
                traits,
                "traits.lead_score, traits.lead_tier, traits.top_reasons, traits.reason_codes",
                as_of,
            )
        elif not _exists(con, TRAITS_TABLE):
            _empty_traits(con, as_of)
        rows = con.execute(f"select count(*) from {TRAITS_TABLE}").fetchone()[0]
        record = {
            "as_of": as_of, "run_id": run_id, "status": status, "message": message,
            "window_days": cfg.window_days, **fields,
            "pql_threshold": cfg.pql, "mql_threshold": cfg.mql, "customers_scored": scored,
            "pql": tier_counts.get("pql"), "mql": tier_counts.get("mql"),
            "cold": tier_counts.get("cold"),
            "duration_seconds": time.perf_counter() - started,
            "fitted_as_of": fitted_as_of if model is not None else None, "fit_settings": key,
        }  # fmt: skip
        con.execute(f"delete from {FIT_TABLE} where as_of = ?", [as_of])
        con.execute(
            f"insert into {FIT_TABLE} (recorded_at, {', '.join(record)}) "
            f"values (now(), {', '.join(['?'] * len(record))})",
            list(record.values()),
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return LeadScoreRun(
        status, message, evaluation, model, int(rows), tier_counts,
        time.perf_counter() - started,
        fitted_as_of=fitted_as_of if model is not None else None, reused=kept is not None,
    )  # fmt: skip


def _exists(con: Connection, table: str) -> bool:
    return table_exists(con, *table.split("."))
