"""Customer lifetime value: BG/NBD purchases + Gamma-Gamma spend, fitted on shop orders up to as_of.

The models are Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative
to the Pareto/NBD model" (BG/NBD), and Fader & Hardie (2013), "The Gamma-Gamma model of monetary
value"; the fitting library is lifetimes 0.11.3 (pure Python, runs on pandas 3 here).

Grains:
- `summarize`: one row per customer with at least one revenue order up to as_of: frequency
  (repeat orders), recency and T in days (first order → last order, first order → as_of end),
  monetary_value (mean total of the repeat orders; 0 without one), as in the papers, and
  spend_log_sum (the sum of the logs of the repeat orders' totals; NaN without a repeat order or
  with one of total 0), what the order-level Gamma-Gamma fit needs besides frequency × mean.
- `predict` / marts.customer_clv: one row per customer of customer_360; the traits are null for
  customers without a revenue order (the models describe buyers) and for everyone when the fit is
  degenerate.
- audit.clv_fits: one row per run (as_of, run_id) with the fitted parameters, log-likelihoods,
  the population they were fitted on, converged and a message.

Time unit: days. Spend: total_amount as recorded, whatever its currency (the shop's amounts are
not converted anywhere in c360 yet).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln

from orchestration.engine import Connection
from orchestration.insight import refit
from orchestration.insight.activity import ORDERS
from orchestration.insight.traits_table import replace_traits
from orchestration.warehouse import create_table

HORIZON_DAYS = 90  # expected_purchases_90d
VALUE_DAYS = 365  # predicted_value_12m: expected purchases in a year x expected order value
# Below this many repeat buyers the fits are not worth reporting: traits stay null, and the
# message says why. Also the minimum for the Gamma-Gamma fit (repeat buyers with spend > 0).
MIN_REPEAT_CUSTOMERS = 30
FIT_TABLE = "audit.clv_fits"
TRAITS_TABLE = "marts.customer_clv"
TRAIT_COLUMNS = ("expected_purchases_90d", "p_alive", "predicted_value_12m")


@dataclass(frozen=True)
class ClvFit:
    """One fit: BG/NBD (r, alpha in days, a, b) and Gamma-Gamma (p, q, v = the papers' gamma).

    `ll` is the BG/NBD log-likelihood in days (Fader, Hardie & Lee eq. 6, summed over customers),
    `gg_ll` the Gamma-Gamma one (Fader & Hardie 2013 eq. 3, repeat buyers only, without the terms
    that do not depend on the parameters). A parameter is None when its model was not fitted.
    """

    customers: int
    repeat_customers: int
    r: float | None = None
    alpha: float | None = None
    a: float | None = None
    b: float | None = None
    ll: float | None = None
    p: float | None = None
    q: float | None = None
    v: float | None = None
    gg_ll: float | None = None
    gg_customers: int = 0
    # how Gamma-Gamma was fitted: `orders` (each repeat order's total, gamma_gamma_order_fit)
    # or `mean` (each customer's mean, the paper's and lifetimes' fit)
    gg_method: str | None = None
    converged: bool = False
    message: str = ""
    seconds: float = 0.0
    # the as_of whose orders the parameters were fitted on; set when the fit is recorded
    fitted_as_of: dt.date | None = None
    reused: bool = False  # tonight scored with an earlier night's fit (insight/refit.py)
    refit_failed: bool = False  # tonight's due fit failed: the last accepted one is in use
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def bgnbd_fitted(self) -> bool:
        return self.r is not None

    @property
    def gamma_gamma_fitted(self) -> bool:
        return self.p is not None

    def parameters(self) -> dict[str, float | None]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b,
                "p": self.p, "q": self.q, "gamma": self.v}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def load_orders(con: Connection, as_of: dt.date) -> pd.DataFrame:
    """Revenue orders up to the end of as_of, one row per order with its customer_id (the same
    orders customer_360's order stats count: paid, shipped or delivered, deduplicated), ordered
    by customer, time and amount: `summarize` then finds each customer's run without sorting,
    and two orders at one instant always take the same places."""
    return con.execute(
        f"""
        select id_map.customer_id, orders.ordered_at, cast(orders.total_amount as double) as amount
        from {ORDERS} as orders
        inner join marts.customer_id_map as id_map
            on id_map.source = 'shop' and id_map.entity = 'customers'
            and orders.shop_customer_id = id_map.source_record_id
        where orders.ordered_at <= ? and orders.is_revenue
        order by id_map.customer_id, orders.ordered_at, amount
        """,
        [as_of_end(as_of)],
    ).df()


def as_of_end(as_of: dt.date) -> dt.datetime:
    """Last instant of the as_of day (dbt's as_of_end())."""
    return dt.datetime.combine(as_of, dt.time(23, 59, 59))


def _in_runs(ids: np.ndarray, at: np.ndarray) -> bool:
    """Whether the rows are sorted by customer id, then time: the order the sort in `summarize`
    would give (its ties kept in input order), so it can be skipped."""
    if len(ids) < 2:
        return True
    same = ids[1:] == ids[:-1]
    return bool(np.all(same | (ids[1:] > ids[:-1])) and np.all(~same | (at[1:] >= at[:-1])))


def summarize(orders: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Orders (customer_id, ordered_at, amount) → one row per customer: frequency, recency, T
    (days, continuous: two orders on one day are two purchases) and monetary_value."""
    if orders.empty:
        return pd.DataFrame(
            {"frequency": [], "recency": [], "T": [], "monetary_value": [], "spend_log_sum": []},
            index=pd.Index([], name="customer_id"),
        )
    # sorted by customer, then time (stable: load_orders' order breaks ties), each customer's
    # orders one run of rows: the per-customer figures are reductions over the runs (numpy),
    # not pandas group-bys over the ids as strings
    ids = orders["customer_id"].to_numpy()
    at = pd.to_datetime(orders["ordered_at"])
    if at.dt.tz is not None:
        at = at.dt.tz_convert("UTC").dt.tz_localize(None)
    if _in_runs(ids, at.to_numpy()):  # load_orders' order: each customer's run as it comes
        change = np.r_[True, ids[1:] != ids[:-1]]
        codes, customers = np.cumsum(change) - 1, ids[change]
        order = np.arange(len(ids))
    else:
        codes, customers = pd.factorize(ids, sort=True)
        order = np.lexsort((at.to_numpy(), codes))
        codes = codes[order]
    end = pd.Timestamp(as_of_end(as_of))
    days = (at - end).dt.total_seconds().to_numpy()[order] / 86_400.0  # <= 0
    amount = orders["amount"].to_numpy(dtype=float)[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    count = np.diff(np.r_[starts, len(codes)])
    first = days[starts]  # days are <= 0: the first order is the smallest
    last = np.maximum.reduceat(days, starts)
    repeat = np.ones(len(codes), dtype=bool)
    repeat[starts] = False
    repeats = count - 1
    # over each customer's repeat orders (its run without the first row): the mean spend of
    # those with an amount (0 without any), and the sum of log spends
    priced = repeat & ~np.isnan(amount)
    spend = np.add.reduceat(np.where(priced, amount, 0.0), starts)
    priced_count = np.add.reduceat(priced.astype(np.int64), starts)
    monetary = np.where(priced_count > 0, spend / np.maximum(priced_count, 1), 0.0)
    positive = np.greater(amount, 0, where=~np.isnan(amount), out=np.zeros(len(amount), bool))
    logs = np.log(np.where(repeat & positive, amount, 1.0))
    bad = np.add.reduceat((repeat & ~positive).astype(np.int64), starts) > 0
    log_sum = np.add.reduceat(logs, starts)
    # a customer with an order of total 0 has no order-level term (NaN); one without a repeat
    # order has none either
    log_sum = np.where(bad | (repeats == 0), np.nan, log_sum)
    out = pd.DataFrame(
        {
            "frequency": repeats.astype(np.int64),
            "recency": last - first,
            "T": -first,
            "monetary_value": monetary,
            "spend_log_sum": log_sum,
        },
        index=pd.Index(customers, name="customer_id"),
    )
    out.index.name = "customer_id"
    return out


# ---------------------------------------------------------------------------------------------
# Likelihoods (in the data's own time unit, so they compare with the papers' figures)
# ---------------------------------------------------------------------------------------------


def bgnbd_log_likelihood(frequency, recency, T, r, alpha, a, b) -> float:
    """Sum over customers of the BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    x, tx, t = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + tx),
            -np.inf,
        )
    return float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


def gamma_gamma_log_likelihood(frequency, monetary_value, p, q, v) -> float:
    """Sum over repeat buyers of the Gamma-Gamma log-likelihood of their mean spend."""
    x, m = np.asarray(frequency, dtype=float), np.asarray(monetary_value, dtype=float)
    return float(
        np.sum(
            gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v)
            + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(x * m + v)
        )
    )  # fmt: skip


def gamma_gamma_order_log_likelihood(count, spend_sum, spend_log_sum, p, q, v) -> float:
    """Sum over customers of the Gamma-Gamma log-likelihood of their individual orders: each
    order's total ~ Gamma(shape p, rate nu), nu ~ Gamma(shape q, rate v) across customers
    (Fader & Hardie 2013's model, before it is reduced to the customer's mean); per customer
    with n orders z_1..z_n: (p − 1) Σ log z − n log Γ(p) + q log v − log Γ(q) + log Γ(pn + q)
    − (pn + q) log(v + Σ z)."""
    n, total, logs = (np.asarray(x, dtype=float) for x in (count, spend_sum, spend_log_sum))
    return float(
        np.sum(
            (p - 1) * logs - n * gammaln(p) + q * np.log(v) - gammaln(q)
            + gammaln(p * n + q) - (p * n + q) * np.log(v + total)
        )
    )  # fmt: skip


def gamma_gamma_order_fit(
    count, spend_sum, spend_log_sum, start: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Maximum-likelihood p, q, v of the order-level Gamma-Gamma likelihood (L-BFGS-B on the
    logs of the parameters, from `start`). The mean-only likelihood leaves p and v strongly
    correlated (the mean order value p·v/(q − 1) is pinned, each alone is not); the spread of a
    customer's own orders identifies p — docs/insight.md has the recovery figures."""
    from scipy import optimize

    n, total, logs = (np.asarray(x, dtype=float) for x in (count, spend_sum, spend_log_sum))

    def negative(z: np.ndarray) -> tuple[float, np.ndarray]:
        """−log-likelihood and its gradient in the log-parameters (analytic: a numerical one
        costs four likelihood passes per step over every repeat buyer)."""
        p, q, v = np.exp(z)
        ll = gamma_gamma_order_log_likelihood(n, total, logs, p, q, v)
        shape = p * n + q
        common = digamma(shape) - np.log(v + total)
        d_p = np.sum(logs - n * digamma(p) + n * common)
        d_q = np.sum(np.log(v) - digamma(q) + common)
        d_v = np.sum(q / v - shape / (v + total))
        return -ll, -np.array([d_p * p, d_q * q, d_v * v])

    result = optimize.minimize(
        negative, np.log(np.asarray(start, dtype=float)), jac=True, method="L-BFGS-B",
        options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8},
    )  # fmt: skip
    if not result.success and not np.isfinite(result.fun):
        raise ValueError(f"order-level Gamma-Gamma fit failed: {result.message}")
    p, q, v = (float(x) for x in np.exp(result.x))
    return p, q, v


# ---------------------------------------------------------------------------------------------
# Fit and predict
# ---------------------------------------------------------------------------------------------


# When BG/NBD's a and b run off together, the drop-out probability after a purchase does not
# vary between customers: the likelihood's optimum is the limit a, b -> inf with a / (a + b) = p,
# one drop-out probability for every customer. That limit model is fitted instead, with a + b
# held at HOMOGENEOUS_AB: a Beta this concentrated (p's spread ~0.004) is a point mass for the
# predictions, which agree with the closed-form limit within 0.5 % (tested); a larger a + b
# loses precision in lifetimes' likelihood.
HOMOGENEOUS_AB = 1e4


def fit_homogeneous_dropout(summary: pd.DataFrame) -> tuple[float, float, float] | None:
    """(r, alpha, p) of BG/NBD with one drop-out probability p for every customer — the limit
    of BG/NBD as a, b grow with a / (a + b) = p — by maximum likelihood (lifetimes' own BG/NBD
    likelihood at a + b = HOMOGENEOUS_AB), or None when it does not converge or a parameter runs
    to its bound (no optimum: e.g. every customer buys at one rate)."""
    from lifetimes import BetaGeoFitter
    from scipy.optimize import minimize
    from scipy.special import expit

    f, rec, t = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    scale = 10.0 / float(t.max())  # lifetimes' own rescaling of time, so alpha is near 1
    weights = np.ones_like(f)

    def nll(x: np.ndarray) -> float:
        p = expit(x[2])
        log_params = np.array([x[0], x[1], np.log(p * HOMOGENEOUS_AB),
                               np.log((1 - p) * HOMOGENEOUS_AB)])  # fmt: skip
        return BetaGeoFitter._negative_log_likelihood(
            log_params, f, rec * scale, t * scale, weights, 0.0
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = minimize(nll, x0=np.array([0.0, 0.0, -2.0]), method="L-BFGS-B",
                          bounds=[(-10, 10), (-10, 10), (-14, 14)])  # fmt: skip
    r, alpha, p = math.exp(result.x[0]), math.exp(result.x[1]) / scale, float(expit(result.x[2]))
    at_bound = any(
        abs(abs(x) - edge) < 1e-3 for x, edge in zip(result.x, (10, 10, 14), strict=True)
    )
    if not result.success or at_bound or not _finite_positive((r, alpha)):
        return None
    return r, alpha, p


def _finite_positive(values) -> bool:
    return all(math.isfinite(v) and v > 0 for v in values)


def _why(exc: Exception, printed: io.StringIO) -> str:
    """One line: the exception, and scipy's own message when lifetimes printed one."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    scipy = next(
        (ln.split(":", 1)[1].strip() for ln in printed.getvalue().splitlines()
         if ln.strip().startswith("message:")),
        "",
    )  # fmt: skip
    return (f"{text} (optimizer: {scipy})" if scipy else text)[:400]


def fit(summary: pd.DataFrame, min_repeat_customers: int = MIN_REPEAT_CUSTOMERS):
    """Fit BG/NBD on every buyer and Gamma-Gamma on the repeat buyers with spend > 0.

    Returns (ClvFit, fitted BetaGeoFitter or None, fitted GammaGammaFitter or None). Never raises
    for degenerate data: too few repeat buyers or a fit that does not converge leave that model
    unfitted, `converged` False and the reason in `message`.
    """
    from lifetimes import BetaGeoFitter, GammaGammaFitter  # heavy import, only when fitting

    started = time.perf_counter()
    customers = len(summary)
    repeat = summary[summary["frequency"] > 0]
    spenders = repeat[repeat["monetary_value"] > 0]
    base = {"customers": customers, "repeat_customers": len(repeat)}
    if len(repeat) < min_repeat_customers:
        reason = (
            f"too few repeat buyers to fit BG/NBD: {len(repeat)} of {customers} customers "
            f"(at least {min_repeat_customers}); CLV traits left null"
        )
        return ClvFit(**base, message=reason, seconds=time.perf_counter() - started), None, None
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    note = ""  # how BG/NBD was fitted, when not the plain way
    printed = io.StringIO()  # lifetimes prints scipy's result when a fit fails
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("ignore")
            bgf.fit(summary["frequency"], summary["recency"], summary["T"])
        r, alpha, a, b = (float(bgf.params_[k]) for k in ("r", "alpha", "a", "b"))
        if not _finite_positive((r, alpha, a, b)):
            raise ValueError(f"parameters out of range: r={r} alpha={alpha} a={a} b={b}")
    except Exception as exc:  # a failed fit is reported, never raised
        limit = fit_homogeneous_dropout(summary)
        if limit is None:  # traits stay null
            reason = f"BG/NBD fit did not converge: {_why(exc, printed)}; CLV traits left null"
            return (
                ClvFit(**base, message=reason[:500], seconds=time.perf_counter() - started),
                None,
                None,
            )
        r, alpha, p_drop = limit
        a, b = p_drop * HOMOGENEOUS_AB, (1 - p_drop) * HOMOGENEOUS_AB
        bgf.params_ = pd.Series({"r": r, "alpha": alpha, "a": a, "b": b})
        note = (
            f"drop-out homogeneous: one drop-out probability p = {p_drop:.4g} after each purchase "
            f"for every customer (the full BG/NBD fit's a and b diverged: {_why(exc, printed)})"
        )
    ll = bgnbd_log_likelihood(
        summary["frequency"], summary["recency"], summary["T"], r, alpha, a, b
    )
    bg = {"r": r, "alpha": alpha, "a": a, "b": b, "ll": ll}
    if len(spenders) < min_repeat_customers:
        reason = (
            f"BG/NBD fitted; too few repeat buyers with spend > 0 for Gamma-Gamma: "
            f"{len(spenders)} (at least {min_repeat_customers}); predicted_value_12m left null"
        )
        message = f"{reason}; {note}" if note else reason
        fitted = ClvFit(**base, **bg, message=message[:500], seconds=time.perf_counter() - started)
        return fitted, bgf, None
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("ignore")
            ggf.fit(spenders["frequency"], spenders["monetary_value"])
        p, q, v = (float(ggf.params_[k]) for k in ("p", "q", "v"))
        method = "mean"
        if "spend_log_sum" in spenders:
            # every repeat order's total, where each is known and positive: the order-level
            # likelihood, from the mean-based optimum (same model, more of the data)
            orders = spenders[np.isfinite(spenders["spend_log_sum"].to_numpy(dtype=float))]
            if len(orders) >= min_repeat_customers:
                count = orders["frequency"].to_numpy(dtype=float)
                p, q, v = gamma_gamma_order_fit(
                    count, count * orders["monetary_value"], orders["spend_log_sum"], (p, q, v)
                )
                ggf.params_ = pd.Series({"p": p, "q": q, "v": v})
                method = "orders"
        if not _finite_positive((p, q, v)) or q <= 1:
            raise ValueError(f"parameters out of range (q must exceed 1): p={p} q={q} v={v}")
    except Exception as exc:
        reason = (
            f"BG/NBD fitted; Gamma-Gamma fit did not converge: {_why(exc, printed)}; "
            "predicted_value_12m left null"
        )
        message = f"{reason}; {note}" if note else reason
        fitted = ClvFit(**base, **bg, message=message[:500], seconds=time.perf_counter() - started)
        return fitted, bgf, None
    gg_ll = gamma_gamma_log_likelihood(spenders["frequency"], spenders["monetary_value"], p, q, v)
    fitted = ClvFit(
        **base,
        **bg,
        p=p,
        q=q,
        v=v,
        gg_ll=gg_ll,
        gg_customers=len(spenders),
        gg_method=method,
        converged=True,
        message=f"ok; {note}"[:500] if note else "ok",
        seconds=time.perf_counter() - started,
    )
    return fitted, bgf, ggf


def predict(summary: pd.DataFrame, bgf, ggf) -> pd.DataFrame:
    """One row per customer of `summary`: expected_purchases_90d, p_alive, predicted_value_12m
    (undiscounted: expected purchases in 365 days x the Gamma-Gamma expected order value given the
    customer's repeat orders). Null where the model behind a trait was not fitted."""
    out = pd.DataFrame(index=summary.index)
    for column in TRAIT_COLUMNS:
        out[column] = np.nan
    if bgf is None or summary.empty:
        return out
    f, rec, t = summary["frequency"], summary["recency"], summary["T"]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        out["expected_purchases_90d"] = np.asarray(
            bgf.conditional_expected_number_of_purchases_up_to_time(HORIZON_DAYS, f, rec, t),
            dtype=float,
        )
        out["p_alive"] = np.asarray(bgf.conditional_probability_alive(f, rec, t), dtype=float)
        if ggf is not None:
            year = np.asarray(
                bgf.conditional_expected_number_of_purchases_up_to_time(VALUE_DAYS, f, rec, t),
                dtype=float,
            )
            spend = np.asarray(
                ggf.conditional_expected_average_profit(f, summary["monetary_value"]), dtype=float
            )
            out["predicted_value_12m"] = year * spend
    return out


# ---------------------------------------------------------------------------------------------
# Warehouse
# ---------------------------------------------------------------------------------------------


FIT_COLUMNS = """
    as_of date not null, run_id varchar not null, fitted_at timestamp not null,
    customers bigint, repeat_customers bigint,
    r double, alpha double, a double, b double, ll double,
    gg_customers bigint, p double, q double, v double, gg_ll double,
    time_unit varchar, converged boolean, message varchar, seconds double,
    gg_method varchar
"""


def ensure_tables(con: Connection) -> None:
    create_table(con, FIT_TABLE, FIT_COLUMNS)
    con.execute("create schema if not exists marts")
    con.execute(f"alter table {FIT_TABLE} add column if not exists gg_method varchar")
    refit.ensure_columns(con, FIT_TABLE)


# what a fit depends on besides the orders: a changed value means a new fit (refit.settings_key)
FIT_SETTINGS = {"model": "bgnbd+gamma_gamma/orders", "min_repeat_customers": MIN_REPEAT_CUSTOMERS}
_PARAMETERS = ("r", "alpha", "a", "b", "p", "q", "v")


def fitted_models(fitted: ClvFit):
    """(BetaGeoFitter, GammaGammaFitter) holding a recorded fit's parameters, for `predict`;
    None for a model the fit lacks."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    bgf = ggf = None
    if fitted.bgnbd_fitted:
        bgf = BetaGeoFitter(penalizer_coef=0.0)
        bgf.params_ = pd.Series({k: getattr(fitted, k) for k in ("r", "alpha", "a", "b")})
    if fitted.gamma_gamma_fitted:
        ggf = GammaGammaFitter(penalizer_coef=0.0)
        ggf.params_ = pd.Series({"p": fitted.p, "q": fitted.q, "v": fitted.v})
    return bgf, ggf


def _reused(row: dict, why: str) -> ClvFit:
    """The ClvFit of a recorded row whose parameters tonight re-uses, `why` in its message."""
    values = {k: row[k] for k in ClvFit.__dataclass_fields__ if k in row and k != "extra"}
    # the fit's own message (a re-using row's adds this note to it once)
    own = str(row["message"]).split(" (fit of ", 1)[0]
    message = f"{own} (fit of {row['fitted_as_of']} in use: {why})"
    return ClvFit(**values | {"seconds": 0.0, "reused": True, "message": message[:500]})


def run(
    con: Connection,
    as_of: dt.date,
    run_id: str,
    refit_config: refit.RefitConfig | None = None,
) -> tuple[ClvFit, int]:
    """Score every buyer on the warehouse's orders up to as_of with the fit in use — fitted
    tonight when due (insight/refit.py), else the last accepted one —, record the fit in
    audit.clv_fits (one row per (as_of, run_id); a rerun of the same run replaces its row) and
    replace marts.customer_clv (one row per customer of customer_360). Returns the fit and the
    rows written."""
    cfg = refit.load_config() if refit_config is None else refit_config
    summary = summarize(load_orders(con, as_of), as_of)
    ensure_tables(con)
    key = refit.settings_key(FIT_SETTINGS)
    kept = refit.reusable_fit(con, FIT_TABLE, as_of, key, "converged", cfg)
    if kept is not None:
        fitted = _reused(kept, f"the models are fitted again every {cfg.refit_after_days} days")
    else:
        fitted, bgf, ggf = fit(summary)
        fitted = replace(fitted, fitted_as_of=as_of)
        last = (
            None
            if fitted.converged
            else refit.reusable_fit(con, FIT_TABLE, as_of, key, "converged", cfg, any_age=True)
        )
        if last is not None:  # a failed fit leaves the last accepted one in use
            fitted = replace(_reused(last, f"tonight's fit failed: {fitted.message}"),
                             refit_failed=True)  # fmt: skip
    if fitted.reused:
        bgf, ggf = fitted_models(fitted)
    traits = predict(summary, bgf, ggf).reset_index()
    record = {
        "as_of": as_of, "run_id": run_id, "customers": fitted.customers,
        "repeat_customers": fitted.repeat_customers,
        **{k: getattr(fitted, k) for k in _PARAMETERS}, "ll": fitted.ll,
        "gg_customers": fitted.gg_customers, "gg_ll": fitted.gg_ll, "time_unit": "day",
        "converged": fitted.converged, "message": fitted.message, "seconds": fitted.seconds,
        "gg_method": fitted.gg_method, "fitted_as_of": fitted.fitted_as_of, "fit_settings": key,
    }  # fmt: skip
    con.execute("begin")
    try:
        con.execute(f"delete from {FIT_TABLE} where as_of = ? and run_id = ?", [as_of, run_id])
        con.execute(
            f"insert into {FIT_TABLE} (fitted_at, {', '.join(record)}) "
            f"values (now(), {', '.join(['?'] * len(record))})",
            list(record.values()),
        )
        rows = replace_traits(
            con,
            TRAITS_TABLE,
            traits,
            """
            case when isnan(traits.expected_purchases_90d) then null else traits.expected_purchases_90d end as expected_purchases_90d,
            case when isnan(traits.p_alive) then null else traits.p_alive end as p_alive,
            case when isnan(traits.predicted_value_12m) then null else traits.predicted_value_12m end as predicted_value_12m
            """,
            as_of,
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return fitted, int(rows)


def fit_record(fitted: ClvFit) -> dict:
    """The fit as plain values (metadata, reports)."""
    record = asdict(fitted)
    record.pop("extra", None)
    return record
