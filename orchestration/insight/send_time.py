"""Best time to send: per customer hour of the week, shrunk toward the population (empirical Bayes).

Engagements (email opens and clicks, web/app session starts) are counted per customer over the
168 hours of the week in the customer's own time zone (`customer_360.time_zone`; hour 0 = Monday
00:00 local). The counts of a customer are modelled as Dirichlet-multinomial: the customer's
hour-of-week distribution θ ~ Dirichlet(α0 · π), with π the population distribution (all
customers' engagements pooled, lightly smoothed) and the prior strength α0 fitted by maximising
the Dirichlet-multinomial marginal likelihood over every customer (empirical Bayes). The posterior
mean of θ is (α0 π + counts) / (α0 + n): a customer with few engagements stays near the
population, one with many gets their own hour. The best hour is the argmax of the posterior mean,
`confidence` the posterior mass of that hour.

Grains:
- `load_events`: one row per engagement up to as_of (the customer's position, occurred_at in UTC,
  channel).
  An email engagement is the first open or click of a campaign by an address (a click follows its
  open within minutes and would count the same moment twice); a web engagement is a session start
  (`session_start` / `app_open`; the other events of a session follow it within minutes).
- `estimate` / marts.customer_send_time: one row per customer of customer_360.
- audit.send_time_evals: one row per run (as_of, run_id) with the fit in use (π, α0, the as_of it
  was fitted at) and its held-out evaluation; fitted when due (insight/refit.py), else re-used.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import gammaln

from orchestration.engine import Connection
from orchestration.insight import refit
from orchestration.insight.activity import EMAIL_ENGAGEMENT, WEB_EVENTS
from orchestration.insight.traits_table import replace_traits
from orchestration.warehouse import create_table

HOURS = 168
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WINDOW_DAYS = 180  # engagements counted: the last 180 days up to as_of
HOLDOUT_DAYS = 28  # evaluation: fit before as_of - 28 days, score the engagements after
SMOOTHING = 1.0  # pseudo-engagements per hour added to the population counts (π > 0 everywhere)
# confidence_level: 'low' when the estimate is essentially the population's (no engagement, or the
# posterior mass of the best hour under LOW_FACTOR x its population share), 'high' from HIGH_MASS.
LOW_FACTOR = 2.0
HIGH_MASS = 0.25
ALPHA_BOUNDS = (1e-2, 1e5)
TRAITS_TABLE = "marts.customer_send_time"
EVAL_TABLE = "audit.send_time_evals"


@dataclass(frozen=True)
class SendTimeFit:
    """The population distribution π (168 values) and the fitted prior strength α0."""

    population: np.ndarray = field(repr=False)
    alpha0: float
    customers: int  # customers with at least one engagement
    events: int
    log_likelihood: float  # Dirichlet-multinomial marginal log-likelihood at α0 (summed)

    @property
    def population_best(self) -> int:
        return int(np.argmax(self.population))


@dataclass(frozen=True)
class SendTimeEval:
    """Held-out evaluation: share of the held-out engagements that fall in the predicted hour
    (`*_exact`) or within one hour of it (`*_1h`), for the shrunk estimate, the unshrunk
    per-customer argmax and the population-best hour; also for customers with few training
    engagements (1..FEW)."""

    cutoff: str
    train_events: int
    holdout_events: int
    holdout_customers: int
    alpha0: float
    shrunk_exact: float
    shrunk_1h: float
    unshrunk_exact: float
    unshrunk_1h: float
    baseline_exact: float
    baseline_1h: float
    few_holdout_events: int
    few_shrunk_exact: float
    few_unshrunk_exact: float
    few_baseline_exact: float
    # calibration for the few-engagement customers: mean stated probability that the held-out
    # engagement falls in the predicted hour (shrunk: the posterior mass; unshrunk: the
    # customer's share of engagements in that hour) and its Brier score (lower is better)
    few_shrunk_confidence: float
    few_unshrunk_confidence: float
    few_shrunk_brier: float
    few_unshrunk_brier: float

    @property
    def lift_exact(self) -> float:
        """Shrunk over the population-best baseline (ratio); nan without a baseline hit."""
        return self.shrunk_exact / self.baseline_exact if self.baseline_exact else math.nan


FEW = 3  # "few engagements": 1 to 3 in training


# ---------------------------------------------------------------------------------------------
# Hours of the week
# ---------------------------------------------------------------------------------------------


def _utc(values) -> pd.Series:
    at = pd.to_datetime(pd.Series(values).reset_index(drop=True))
    return at.dt.tz_localize("UTC") if at.dt.tz is None else at.dt.tz_convert("UTC")


def hour_of_week(occurred_at, time_zone) -> np.ndarray:
    """Local hour of the week (0 = Monday 00:00 local .. 167) of each UTC instant in its time
    zone (IANA name; naive timestamps are UTC; an unknown or null zone counts as UTC)."""
    at = _utc(occurred_at)
    zones = pd.Series(time_zone).reset_index(drop=True).fillna("UTC").astype(str)
    out = np.zeros(len(at), dtype=np.int64)
    for zone in zones.unique():  # loop over time zones, not rows
        sel = (zones == zone).to_numpy()
        try:
            local = at[sel].dt.tz_convert(zone)
        except Exception:  # unknown zone name: UTC
            local = at[sel]
        out[sel] = local.dt.dayofweek.to_numpy() * 24 + local.dt.hour.to_numpy()
    return out


def local_time_label(hour: int) -> str:
    """'Tue 19:00' for hour of the week 43."""
    return f"{DAYS[hour // 24]} {hour % 24:02d}:00"


def _circular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(np.asarray(a) - np.asarray(b)) % HOURS
    return np.minimum(d, HOURS - d)


# ---------------------------------------------------------------------------------------------
# Fit and estimate
# ---------------------------------------------------------------------------------------------


def count(events: pd.DataFrame) -> pd.DataFrame:
    """Events (customer_id, hour_of_week) → long counts (customer_id, hour_of_week, n)."""
    if events.empty:
        return pd.DataFrame({"customer_id": [], "hour_of_week": [], "n": []}).astype(
            {"hour_of_week": np.int64, "n": np.int64}
        )
    if not pd.api.types.is_integer_dtype(events["customer_id"]):  # ids as text
        return (
            events.groupby(["customer_id", "hour_of_week"], sort=True).size().rename("n")
            .reset_index()
        )  # fmt: skip
    # customers as integers (run's row positions): one sort of customer * HOURS + hour
    hours = events["hour_of_week"].to_numpy(dtype=np.int64)
    keys, n = np.unique(
        events["customer_id"].to_numpy(dtype=np.int64) * HOURS + hours, return_counts=True
    )
    return pd.DataFrame(
        {"customer_id": keys // HOURS, "hour_of_week": keys % HOURS, "n": n.astype(np.int64)}
    )


def population(counts: pd.DataFrame, smoothing: float = SMOOTHING) -> np.ndarray:
    """Pooled hour-of-week distribution of all engagements, plus `smoothing` per hour."""
    pooled = np.bincount(
        counts["hour_of_week"].to_numpy(dtype=np.int64),
        weights=counts["n"].to_numpy(dtype=float),
        minlength=HOURS,
    )
    pooled = pooled + smoothing
    return pooled / pooled.sum()


def _dm_parts(counts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the likelihood reads of the counts, taken once for every α0 the search tries:
    per row n and hour, per customer the total."""
    c = counts["n"].to_numpy(dtype=float)
    hours = counts["hour_of_week"].to_numpy(dtype=np.int64)
    totals = counts.groupby("customer_id", sort=False)["n"].sum().to_numpy(dtype=float)
    return c, hours, totals


def _dm_ll(
    alpha0: float, parts: tuple[np.ndarray, np.ndarray, np.ndarray], pi: np.ndarray
) -> float:
    c, hours, totals = parts
    a = alpha0 * pi[hours]
    per_customer = gammaln(alpha0) - gammaln(alpha0 + totals)
    return float(per_customer.sum() + np.sum(gammaln(a + c) - gammaln(a)))


def dm_log_likelihood(alpha0: float, counts: pd.DataFrame, pi: np.ndarray) -> float:
    """Dirichlet-multinomial log-likelihood of every customer's counts, summed (without the
    multinomial coefficient, which does not depend on α0 or π)."""
    return _dm_ll(alpha0, _dm_parts(counts), pi)


def fit(counts: pd.DataFrame, smoothing: float = SMOOTHING) -> SendTimeFit:
    """π from the pooled counts and α0 by maximum marginal likelihood (bounded 1-D search on
    log α0). Without repeat engagements α0 is not identified: the upper bound is kept (every
    customer gets the population's hour)."""
    pi = population(counts, smoothing)
    customers = int(counts["customer_id"].nunique()) if len(counts) else 0
    events = int(counts["n"].sum()) if len(counts) else 0
    lo, hi = (math.log(b) for b in ALPHA_BOUNDS)
    totals = counts.groupby("customer_id")["n"].sum() if len(counts) else pd.Series([], dtype=int)
    if (totals >= 2).sum() == 0:
        alpha0 = ALPHA_BOUNDS[1]
    else:
        parts = _dm_parts(counts)
        res = minimize_scalar(
            lambda la: -_dm_ll(math.exp(la), parts, pi),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-4},
        )
        alpha0 = float(math.exp(res.x))
    ll = dm_log_likelihood(alpha0, counts, pi) if len(counts) else 0.0
    return SendTimeFit(pi, alpha0, customers, events, ll)


def estimate(counts: pd.DataFrame, fitted: SendTimeFit, customers=None) -> pd.DataFrame:
    """Per customer (index customer_id): best_hour_of_week (argmax of the posterior mean; ties go
    to the hour the population engages more in), confidence (posterior mass of that hour),
    n_events. `customers` adds rows for customers without engagement: the population's best hour,
    confidence = its population share."""
    pi, a0, best = fitted.population, fitted.alpha0, fitted.population_best
    if len(counts):
        # per customer the row of the highest score (ties: the hour the population engages
        # more in, then the earliest): the first of each customer's run after one sort
        codes, counted = pd.factorize(counts["customer_id"], sort=True)
        hours = counts["hour_of_week"].to_numpy(dtype=np.int64)
        n_rows = counts["n"].to_numpy(dtype=np.int64)
        row_score = a0 * pi[hours] + n_rows.astype(float)
        order = np.lexsort((hours, -pi[hours], -row_score, codes))
        firsts = order[np.r_[True, codes[order][1:] != codes[order][:-1]]]
        totals = pd.Series(
            np.bincount(codes, weights=n_rows, minlength=len(counted)).astype(np.int64),
            index=pd.Index(counted, name="customer_id"),
        )
        top = pd.DataFrame(
            {"score": row_score[firsts], "hour_of_week": hours[firsts]}, index=totals.index
        )
        prior_best = a0 * pi[best]  # the best unobserved hour: the population's best
        use_prior = top["score"].to_numpy() < prior_best
        hour = np.where(use_prior, best, top["hour_of_week"].to_numpy())
        score = np.where(use_prior, prior_best, top["score"].to_numpy())
        n = totals.to_numpy(dtype=np.int64)
        out = pd.DataFrame(
            {"best_hour_of_week": hour.astype(np.int64), "confidence": score / (a0 + n),
             "n_events": n},
            index=totals.index,
        )  # fmt: skip
    else:
        out = pd.DataFrame({"best_hour_of_week": [], "confidence": [], "n_events": []})
        out.index.name = "customer_id"
    if customers is not None:
        missing = pd.Index(customers).difference(out.index)
        extra = pd.DataFrame(
            {"best_hour_of_week": best, "confidence": float(pi[best]), "n_events": 0},
            index=missing,
        )
        out = pd.concat([out, extra]) if len(out) else extra
        out.index.name = "customer_id"
    out["best_hour_of_week"] = out["best_hour_of_week"].astype(np.int64)
    out["n_events"] = out["n_events"].astype(np.int64)
    out["confidence"] = out["confidence"].astype(float)
    low = (out["n_events"] == 0) | (
        out["confidence"] < LOW_FACTOR * pi[out["best_hour_of_week"].to_numpy()]
    )
    out["confidence_level"] = np.where(
        low, "low", np.where(out["confidence"] >= HIGH_MASS, "high", "medium")
    )
    return out


def unshrunk(counts: pd.DataFrame, fitted: SendTimeFit) -> pd.Series:
    """Per customer: the hour with the most engagements (ties: the earliest hour) — the estimate
    without shrinkage, for comparison."""
    if not len(counts):
        return pd.Series([], dtype=np.int64, name="hour_of_week")
    top = counts.sort_values(["customer_id", "n", "hour_of_week"], ascending=[True, False, True])
    return top.drop_duplicates("customer_id").set_index("customer_id")["hour_of_week"]


# ---------------------------------------------------------------------------------------------
# Evaluation on held-out engagement
# ---------------------------------------------------------------------------------------------


def evaluate(events: pd.DataFrame, cutoff, few: int = FEW) -> SendTimeEval | None:
    """Fit on the engagements before `cutoff` (a UTC instant), predict per customer and score the
    engagements at or after it: the share that falls in the predicted hour (exact) or within one
    hour of it, for the shrunk estimate, the unshrunk argmax (the population's best hour for a
    customer without training engagements) and the population-best hour. Events: customer_id,
    occurred_at (UTC), hour_of_week. None when either side is empty."""
    cut = pd.Timestamp(cutoff)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    train_mask = (_utc(events["occurred_at"]) < cut).to_numpy()
    train, test = events[train_mask], events[~train_mask]
    if train.empty or test.empty:
        return None
    counts = count(train)
    fitted = fit(counts)
    best = fitted.population_best
    est = estimate(counts, fitted)
    shrunk = est["best_hour_of_week"]
    raw = unshrunk(counts, fitted)
    top_n = counts.groupby("customer_id")["n"].max()
    n_train = counts.groupby("customer_id")["n"].sum()
    customer = test["customer_id"]
    actual = test["hour_of_week"].to_numpy()
    p_shrunk = shrunk.reindex(customer).fillna(best).to_numpy(dtype=np.int64)
    p_raw = raw.reindex(customer).fillna(best).to_numpy(dtype=np.int64)
    p_base = np.full(len(test), best)
    k = n_train.reindex(customer).fillna(0).to_numpy()
    few_mask = (k >= 1) & (k <= few)
    conf_shrunk = est["confidence"].reindex(customer).to_numpy(dtype=float)
    conf_raw = (top_n.reindex(customer) / n_train.reindex(customer)).to_numpy(dtype=float)
    hit_shrunk = (p_shrunk == actual)[few_mask]
    hit_raw = (p_raw == actual)[few_mask]

    def mean(values):
        return float(np.mean(values)) if len(values) else math.nan

    def share(pred, mask=None, width=0):
        hit = _circular_distance(pred, actual) <= width
        hit = hit if mask is None else hit[mask]
        return float(hit.mean()) if len(hit) else math.nan

    return SendTimeEval(
        cutoff=str(cut),
        train_events=len(train),
        holdout_events=len(test),
        holdout_customers=int(customer.nunique()),
        alpha0=fitted.alpha0,
        shrunk_exact=share(p_shrunk),
        shrunk_1h=share(p_shrunk, width=1),
        unshrunk_exact=share(p_raw),
        unshrunk_1h=share(p_raw, width=1),
        baseline_exact=share(p_base),
        baseline_1h=share(p_base, width=1),
        few_holdout_events=int(few_mask.sum()),
        few_shrunk_exact=share(p_shrunk, few_mask),
        few_unshrunk_exact=share(p_raw, few_mask),
        few_baseline_exact=share(p_base, few_mask),
        few_shrunk_confidence=mean(conf_shrunk[few_mask]),
        few_unshrunk_confidence=mean(conf_raw[few_mask]),
        few_shrunk_brier=mean((conf_shrunk[few_mask] - hit_shrunk) ** 2),
        few_unshrunk_brier=mean((conf_raw[few_mask] - hit_raw) ** 2),
    )


# ---------------------------------------------------------------------------------------------
# Warehouse
# ---------------------------------------------------------------------------------------------


def as_of_end(as_of: dt.date) -> dt.datetime:
    """Last instant of the as_of day (dbt's as_of_end()), UTC."""
    return dt.datetime.combine(as_of, dt.time(23, 59, 59))


def load_events(con: Connection, as_of: dt.date, window_days: int = WINDOW_DAYS) -> pd.DataFrame:
    """Engagements in the window up to the end of as_of of the customers of customer_360, one row
    each: customer (the customer's row in `load_customers`' order, as an integer: the engine
    resolves the ids, which pandas would hash as strings), occurred_at (UTC), channel. Email: the
    first open or click of a campaign per address, joined to the customers through their records'
    normalised emails (as customer_360's email engagement); web: session starts, joined through
    the anonymous id (marts.customer_id_map)."""
    end = as_of_end(as_of)
    start = end - dt.timedelta(days=window_days)
    return con.execute(
        f"""
        with customer_emails as (
            select distinct id_map.customer_id, records.email_normalized
            from intermediate.int_identity__records as records
            inner join marts.customer_id_map as id_map on records.record_key = id_map.record_key
            where records.email_normalized is not null
        ),
        email as (
            select customer_emails.customer_id, min(engagement.occurred_at) as occurred_at
            from {EMAIL_ENGAGEMENT} as engagement
            inner join customer_emails
                on engagement.email_normalized = customer_emails.email_normalized
            where engagement.event_type in ('opened', 'clicked')
                and engagement.occurred_at > ? and engagement.occurred_at <= ?
            group by customer_emails.customer_id, engagement.email_normalized,
                engagement.campaign_id
        ),
        web as (
            select id_map.customer_id, events.occurred_at
            from {WEB_EVENTS} as events
            inner join marts.customer_id_map as id_map
                on id_map.source = 'web' and events.anonymous_id = id_map.source_record_id
            where events.event_name in ('session_start', 'app_open')
                and events.occurred_at > ? and events.occurred_at <= ?
        ),
        engagements as (
            select customer_id, cast(occurred_at as timestamp) as occurred_at, 'email' as channel
            from email
            union all
            select customer_id, cast(occurred_at as timestamp) as occurred_at, 'web' as channel
            from web
        ),
        customers as (
            select customer_id, row_number() over (order by customer_id) - 1 as customer
            from marts.customer_360
        )
        select customers.customer, engagements.occurred_at, engagements.channel
        from engagements
        inner join customers on engagements.customer_id = customers.customer_id
        """,
        [start, end, start, end],
    ).df()


def load_customers(con: Connection) -> pd.DataFrame:
    """customer_id and time_zone of every customer of customer_360, in customer_id order (the
    order `load_events` numbers the customers in)."""
    return con.execute(
        "select customer_id, time_zone from marts.customer_360 order by customer_id"
    ).df()


EVAL_COLUMNS = """
    as_of date not null, run_id varchar not null, evaluated_at timestamp not null,
    customers bigint, customers_with_events bigint, events bigint,
    alpha0 double, log_likelihood double, population_best_hour integer,
    cutoff varchar, train_events bigint, holdout_events bigint,
    shrunk_exact double, shrunk_1h double, unshrunk_exact double, unshrunk_1h double,
    baseline_exact double, baseline_1h double, lift_exact double,
    few_holdout_events bigint, few_shrunk_exact double, few_unshrunk_exact double,
    few_shrunk_brier double, few_unshrunk_brier double, seconds double
"""


def ensure_tables(con: Connection) -> None:
    create_table(con, EVAL_TABLE, EVAL_COLUMNS)
    # π of the fit (168 shares, JSON): what a later night scores with besides α0
    con.execute(f"alter table {EVAL_TABLE} add column if not exists population varchar")
    refit.ensure_columns(con, EVAL_TABLE)
    con.execute("create schema if not exists marts")


# what a fit depends on besides the engagements (refit.settings_key)
FIT_SETTINGS = {"model": "dirichlet-multinomial", "smoothing": SMOOTHING, "bounds": ALPHA_BOUNDS}
# the evaluation's columns, copied from the fit's row when a later night re-uses the fit
_EVAL_FIELDS = (
    "cutoff", "train_events", "holdout_events", "shrunk_exact", "shrunk_1h", "unshrunk_exact",
    "unshrunk_1h", "baseline_exact", "baseline_1h", "lift_exact", "few_holdout_events",
    "few_shrunk_exact", "few_unshrunk_exact", "few_shrunk_brier", "few_unshrunk_brier",
)  # fmt: skip


@dataclass(frozen=True)
class SendTimeRun:
    fit: SendTimeFit
    evaluation: SendTimeEval | None  # tonight's (None when the fit is re-used or nothing held out)
    rows: int
    customers_with_events: int
    seconds: float
    fitted_as_of: dt.date | None = None  # the as_of π and α0 were fitted at
    reused: bool = False  # scored with an earlier night's fit (insight/refit.py)

    def metadata(self) -> dict:
        """Plain values for the asset's metadata."""
        f, e = self.fit, self.evaluation
        out = {
            "customers_with_events": self.customers_with_events,
            "events": f.events,
            "alpha0": round(f.alpha0, 4),
            "population_best_hour": local_time_label(f.population_best),
            "seconds": round(self.seconds, 2),
            "refitted": not self.reused,
            "fitted_as_of": str(self.fitted_as_of),
        }
        if e is not None:
            for name, value in asdict(e).items():
                if isinstance(value, float):
                    value = None if math.isnan(value) else round(value, 4)
                out[f"eval_{name}"] = value
            if not math.isnan(e.lift_exact):
                out["eval_lift_exact"] = round(e.lift_exact, 3)
        return out


def _eval_values(e: SendTimeEval | None) -> dict:
    if e is None:
        return dict.fromkeys(_EVAL_FIELDS)
    return {k: (e.lift_exact if k == "lift_exact" else getattr(e, k)) for k in _EVAL_FIELDS}


def run(
    con: Connection,
    as_of: dt.date,
    run_id: str,
    window_days: int = WINDOW_DAYS,
    holdout_days: int = HOLDOUT_DAYS,
    refit_config: refit.RefitConfig | None = None,
) -> SendTimeRun:
    """Estimate every customer's hour from the engagements in the window with the fit in use —
    tonight's when one is due (insight/refit.py; then also evaluated on the last `holdout_days`,
    fitted before them), else the last one —, replace marts.customer_send_time (one row per
    customer of customer_360) and record the run in audit.send_time_evals (a rerun of the same
    run replaces its row)."""
    started = time.perf_counter()
    rcfg = refit.load_config() if refit_config is None else refit_config
    customers = load_customers(con)
    events = load_events(con, as_of, window_days)
    ids = customers["customer_id"]
    # the counts, fit and evaluation group on each customer's row in `customers` (integers, not
    # strings: several times faster in pandas), which also gives the time zone
    events = events.rename(columns={"customer": "customer_id"})
    at = events["customer_id"].to_numpy()
    events["hour_of_week"] = hour_of_week(
        events["occurred_at"], customers["time_zone"].to_numpy()[at]
    )
    counts = count(events)
    ensure_tables(con)
    key = refit.settings_key({**FIT_SETTINGS, "window_days": window_days,
                              "holdout_days": holdout_days})  # fmt: skip
    # a fit made without any engagement is not worth keeping: fit again when there is some
    kept = refit.reusable_fit(
        con, EVAL_TABLE, as_of, key, "population is not null and events > 0", rcfg
    )
    evaluation = None
    if kept is not None:
        fitted = SendTimeFit(
            population=np.array(json.loads(kept["population"]), dtype=float),
            alpha0=float(kept["alpha0"]),
            customers=int(counts["customer_id"].nunique()) if len(counts) else 0,
            events=int(counts["n"].sum()) if len(counts) else 0,
            log_likelihood=float(kept["log_likelihood"]),
        )
        fitted_as_of, eval_values = kept["fitted_as_of"], {k: kept[k] for k in _EVAL_FIELDS}
    else:
        fitted = fit(counts)
        cutoff = as_of_end(as_of) - dt.timedelta(days=holdout_days)
        evaluation = evaluate(events, cutoff) if len(events) else None
        fitted_as_of, eval_values = as_of, _eval_values(evaluation)
    traits = estimate(counts, fitted, np.arange(len(customers))).reset_index()
    traits["customer_id"] = ids.to_numpy()[traits["customer_id"].to_numpy()]
    labels = np.array([local_time_label(h) for h in range(HOURS)])
    traits["best_local_time"] = labels[traits["best_hour_of_week"].to_numpy()]
    con.execute("begin")
    try:
        rows = replace_traits(
            con,
            TRAITS_TABLE,
            traits,
            """
            cast(traits.best_hour_of_week as integer) as best_hour_of_week,
            traits.best_local_time,
            c360.time_zone,
            cast(traits.n_events as bigint) as n_events,
            traits.confidence,
            traits.confidence_level
            """,
            as_of,
        )
        con.execute(f"delete from {EVAL_TABLE} where as_of = ? and run_id = ?", [as_of, run_id])
        record = {
            "as_of": as_of, "run_id": run_id, "customers": len(customers),
            "customers_with_events": fitted.customers, "events": fitted.events,
            "alpha0": fitted.alpha0, "log_likelihood": fitted.log_likelihood,
            "population_best_hour": fitted.population_best, **eval_values,
            "seconds": time.perf_counter() - started,
            "population": json.dumps(fitted.population.tolist()),
            "fitted_as_of": fitted_as_of, "fit_settings": key,
        }  # fmt: skip
        values = [None if isinstance(v, float) and math.isnan(v) else v for v in record.values()]
        con.execute(
            f"insert into {EVAL_TABLE} (evaluated_at, {', '.join(record)}) "
            f"values (now(), {', '.join(['?'] * len(record))})",
            values,
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return SendTimeRun(
        fitted, evaluation, int(rows), fitted.customers, time.perf_counter() - started,
        fitted_as_of=fitted_as_of, reused=kept is not None,
    )  # fmt: skip
