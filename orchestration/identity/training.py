"""Unsupervised training of the probabilistic identity model on the warehouse's own records.

The model (orchestration/identity/probabilistic.py) is Fellegi-Sunter, built from the
comparisons and blocking rules of `vars.identity.probabilistic`. `fit()` trains it on the records
in front of it, no labels needed:

1. the probability that two random records match (the prior) from the deterministic rules
   (`deterministic_rules`: exact name and birth date, exact name and address, a shared email or
   phone), assumed to find `prior_recall` of the true pairs;
2. u (how often non-matching pairs agree at each level) by random sampling of record pairs
   (seeded, so the same records give the same model);
3. m (how often matching pairs agree) by expectation-maximisation, once per `training_blocking`
   rule: each session trains the comparisons its rule does not fix (pairs of one birth date train
   names and address, pairs of one name train birth date and address, pairs of one street train
   names and birth date);
4. the threshold, from the fitted model (`choose_threshold`): the fitted model scores every pair
   the prediction blocking rules produce, and the threshold is the one that maximises the F1 the
   model itself expects (its probabilities summed as expected true links) among thresholds whose
   expected precision is at least `min_precision`, and never below 0.5.

A degenerate fit is refused, with the reason (`degenerate_reasons`): a prior that expects less than
one matching pair among all record pairs (the deterministic rules found nothing: nothing to learn
from), a comparison whose m and u distributions are nearly the same (total variation distance
below MIN_SEPARATION: it tells matches from non-matches no better than chance), an EM session that
did not converge, or no threshold reaching `min_precision`. A refused fit is recorded but never
used: the last accepted model stays in use, and the shipped fixed model
(probabilistic_model.json) when none was ever accepted.

Trained models are versioned rows of `audit.identity_models` (an audit table a dbt full refresh
does not touch): version, trained_at, as_of, records, match_prior, threshold, status
(`accepted` | `refused`), reason, the model JSON, the per-comparison m/u table and the training
details. The asset identity_state/identity_model (orchestration/defs/transform/identity_model.py)
retrains when no model was accepted, when the accepted one is `retrain_after_days` older than the
run's as_of, or when the configured comparisons or blocking changed; `c360 identity train` trains
on demand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from orchestration.engine import Connection, table_exists
from orchestration.identity import probabilistic, term_frequencies
from orchestration.identity.config import Probabilistic

TABLE = "audit.identity_models"
# A comparison whose m and u distributions (over its non-null levels) are closer than this in
# total variation distance is no evidence: m ≈ u.
MIN_SEPARATION = 0.05
# Pairs scored below this probability are left out of the threshold search (never linked: the
# threshold is at least 0.5) but counted in the expected number of matches.
FLOOR = 0.5
# Probabilities the threshold search reads into memory (the rest are summed in SQL).
SEARCH_FROM = 0.01
# A share of records below which a column counts as absent (no u or m could be estimated).
MIN_PRESENT_SHARE = 0.01
# m of a level no pair reached in any EM session (e.g. swapped names in data without one): rare,
# not impossible.
UNSEEN_LEVEL_M = 0.001
SEED = 42
# The prior's re-estimation from the fitted model (_prior_and_threshold): stop when it moves
# less than this share, after at most this many steps.
PRIOR_TOLERANCE = 0.02
PRIOR_STEPS = 8

log = logging.getLogger(__name__)


class TrainingRefused(RuntimeError):
    """The fit is degenerate; the message says why. The last accepted model stays in use."""


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold the rule picked, and what the fitted model expects at it."""

    threshold: float
    links: int
    expected_precision: float
    expected_recall: float
    expected_f1: float

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ModelVersion:
    """One row of audit.identity_models: a trained model, accepted or refused."""

    version: int | None
    trained_at: dt.datetime
    as_of: dt.date
    records: int
    match_prior: float | None
    threshold: float | None
    status: str  # accepted | refused
    reason: str | None
    model: dict[str, Any] | None
    mu_table: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    settings_hash: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def describe(self) -> str:
        head = f"model v{self.version}" if self.version is not None else "model"
        if not self.accepted:
            return f"{head} refused (as_of {self.as_of.isoformat()}): {self.reason}"
        return (
            f"{head} trained {self.trained_at:%Y-%m-%d %H:%M} UTC on as_of "
            f"{self.as_of.isoformat()}, {self.records:,} records, match prior "
            f"{self.match_prior:.3g}, threshold {self.threshold:.6f}"
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "reason": self.reason or "",
            "trained_at": self.trained_at.isoformat(),
            "as_of": self.as_of.isoformat(),
            "records": self.records,
            "match_prior": self.match_prior,
            "threshold": self.threshold,
        }


def settings_hash(config: Probabilistic) -> str:
    text = json.dumps(config.model_settings(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# The threshold rule
# ------------------------------------------------------------------------------------------------


def choose_threshold(
    probabilities: np.ndarray | list[float],
    min_precision: float,
    expected_matches: float | None = None,
) -> ThresholdChoice | None:
    """The threshold the fitted model supports (None when none reaches `min_precision`).

    `probabilities`: the fitted model's match probability of every scored pair (at least those
    at or above FLOOR); `expected_matches`: the sum of all scored pairs' probabilities (default:
    the sum of `probabilities`). Linking the k most probable pairs, the model expects
    TP(k) = p1 + ... + pk true links, precision TP(k)/k, recall TP(k)/expected_matches and
    F1 2·TP(k)/(k + expected_matches). The rule takes the k with the highest expected F1 among
    those with expected precision >= min_precision and pk >= FLOOR; the threshold is pk (pairs
    tied with it link too)."""
    p = np.sort(np.asarray(probabilities, dtype=np.float64))[::-1]
    total = float(p.sum()) if expected_matches is None else float(expected_matches)
    p = p[p >= FLOOR]
    if not len(p) or total <= 0:
        return None
    # a threshold links every pair tied with it: only the last of a run of ties is a cut
    last_of_ties = np.append(p[1:] != p[:-1], True)
    k = np.arange(1, len(p) + 1)
    tp = np.cumsum(p)
    precision = tp / k
    f1 = 2 * tp / (k + total)
    ok = last_of_ties & (precision >= min_precision)
    if not ok.any():
        return None
    best = int(np.argmax(np.where(ok, f1, -1.0)))
    return ThresholdChoice(
        threshold=float(p[best]),
        links=int(k[best]),
        expected_precision=float(precision[best]),
        expected_recall=float(min(tp[best] / total, 1.0)),
        expected_f1=float(f1[best]),
    )


# ------------------------------------------------------------------------------------------------
# Degenerate fits
# ------------------------------------------------------------------------------------------------


def mu_table(model: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per comparison level of a model: m, u and the match weight log2(m/u)."""
    rows = []
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            m, u = level.get("m_probability"), level.get("u_probability")
            weight = math.log2(m / u) if m and u else None
            rows.append(
                {
                    "comparison": comparison["output_column_name"],
                    "level": level.get("label_for_charts") or level["sql_condition"],
                    "m": m,
                    "u": u,
                    "weight": None if weight is None else round(weight, 3),
                }
            )
    return rows


def degenerate_reasons(
    model: dict[str, Any], records: int, sessions: list[dict[str, Any]]
) -> list[str]:
    """Why a fitted model must not be used (empty: it may)."""
    reasons = []
    prior = model.get("probability_two_random_records_match") or 0.0
    pairs = records * (records - 1) / 2
    if not prior > 0 or prior * pairs < 1:
        reasons.append(
            f"match prior {prior:.3g} expects {prior * pairs:.2g} matching pairs among "
            f"{pairs:,.0f}: the deterministic rules found no duplicates to learn from"
        )
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        m = np.array([lv.get("m_probability") or 0.0 for lv in levels])
        u = np.array([lv.get("u_probability") or 0.0 for lv in levels])
        if m.sum() <= 0 or u.sum() <= 0:
            reasons.append(f"{comparison['output_column_name']}: m or u not estimated")
            continue
        separation = 0.5 * float(np.abs(m / m.sum() - u / u.sum()).sum())
        if separation < MIN_SEPARATION:
            reasons.append(
                f"{comparison['output_column_name']}: m ≈ u (total variation {separation:.3f} < "
                f"{MIN_SEPARATION}): it tells matches from non-matches no better than chance"
            )
    for session in sessions:
        if not session["converged"]:
            reasons.append(
                f"EM on {session['blocking_rule']} did not converge in "
                f"{session['iterations']} iterations (last change {session['last_change']:.3g})"
            )
    return reasons


# ------------------------------------------------------------------------------------------------
# Fitting
# ------------------------------------------------------------------------------------------------


def present_columns(records: pa.Table) -> set[str]:
    """Columns carried by at least MIN_PRESENT_SHARE of the records (email and phone are
    compared where the data has them)."""
    n = max(records.num_rows, 1)
    return {
        name
        for name in records.column_names
        if records.column(name).null_count < records.num_rows
        and (records.num_rows - records.column(name).null_count) / n >= MIN_PRESENT_SHARE
    }


def _session(linker: Any, rule: Any, label: str) -> dict[str, Any]:
    from splink.internals.expectation_maximisation import (
        _max_change_in_parameters_comparison_levels,
    )

    session = linker.training.estimate_parameters_using_expectation_maximisation(rule)
    history = session._core_model_settings_history
    training = linker._settings_obj.training_settings
    change = (
        _max_change_in_parameters_comparison_levels(history)["max_abs_change_value"]
        if len(history) > 1
        else 0.0
    )
    return {
        "blocking_rule": label,
        "iterations": len(history) - 1,
        "last_change": float(change),
        "converged": bool(change < training.em_convergence),
    }


def fit(
    records: pa.Table,
    config: Probabilistic,
    as_of: dt.date,
    seed: int = SEED,
    u_max_pairs: float = 1e6,
) -> ModelVersion:
    """Train the configured model on `records` (probabilistic.candidates()); a degenerate fit
    comes back with status `refused` and the reason."""
    from splink import SettingsCreator

    started = time.monotonic()
    available = records.num_rows
    every_record = records
    records = training_sample(records, config.training_max_records)
    n = records.num_rows
    present = present_columns(records)
    creator: SettingsCreator = probabilistic.configured_settings(config, present)
    compared = [
        c.column
        for c in config.comparisons
        if all(col in present for col in probabilistic._compared_columns(c))
    ]

    def usable(rule) -> bool:
        return all(probabilistic._base_column(c) in present for c in rule.columns)

    base = dict(
        trained_at=dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
        as_of=as_of,
        records=n,
        version=None,
        settings_hash=settings_hash(config),
    )

    def refused(reason: str, **kw: Any) -> ModelVersion:
        return ModelVersion(
            match_prior=kw.pop("match_prior", None), threshold=None, status="refused",
            reason=reason, model=kw.pop("model", None), **kw, **base,
        )  # fmt: skip

    if n < 2 or not compared:
        return refused(f"{n} records with {len(compared)} compared columns: nothing to train on")
    deterministic = [
        probabilistic.blocking_rule(r) for r in config.deterministic_rules if usable(r)
    ]
    training_rules = [r for r in config.training_blocking if usable(r)]
    if not deterministic or not training_rules:
        return refused("no deterministic or training blocking rule has its columns in the data")
    linker, scratch = probabilistic._linker(records, creator)
    sessions: list[dict[str, Any]] = []
    try:
        try:
            linker.training.estimate_probability_two_random_records_match(
                deterministic, recall=config.prior_recall
            )
        except Exception as exc:  # Splink refuses a prior of 0 or 1 outright
            return refused(f"match prior not estimated from the deterministic rules: {exc}")
        prior = linker._settings_obj._probability_two_random_records_match
        if not prior > 0 or prior * n * (n - 1) / 2 < 1:
            model = linker.misc.save_model_to_json()
            return refused(
                "; ".join(degenerate_reasons(model, n, [])), match_prior=prior, model=model
            )
        linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
        for rule in training_rules:
            try:
                sessions.append(_session(linker, probabilistic.blocking_rule(rule), rule.label))
            except Exception as exc:  # e.g. no pairs under this rule
                sessions.append(
                    {"blocking_rule": rule.label, "iterations": 0, "last_change": math.nan,
                     "converged": False, "error": str(exc)}
                )  # fmt: skip
        model = linker.misc.save_model_to_json()
        model.pop("linker_uid", None)
        # the prior is the deterministic rules' estimate (an EM session's own, of pairs inside
        # its blocking rule, is not the prior of two random records)
        model["probability_two_random_records_match"] = prior
        for comparison in model["comparisons"]:
            for level in comparison["comparison_levels"]:
                if level.get("is_null_level"):
                    continue
                if not level.get("m_probability"):
                    level["m_probability"] = UNSEEN_LEVEL_M
                if not level.get("u_probability"):
                    # no sampled pair of two records reached it: at most one in u_max_pairs
                    level["u_probability"] = 1 / u_max_pairs
    finally:
        # closed before scoring: a second scratch open beside it would halve the memory share
        # the scoring gets (warehouse.memory_shares)
        scratch.close()
    reasons = degenerate_reasons(model, n, sessions)
    choice = None
    prior_steps: list[float] = []
    if not reasons:
        prior_steps, choice = _prior_and_threshold(
            records, model, config.prior_recall, config.min_precision
        )
        if choice is None:
            reasons.append(
                f"no threshold at or above {FLOOR} reaches the expected precision "
                f"{config.min_precision} (probabilistic.min_precision)"
            )
    training = {
        "sessions": sessions,
        "compared": compared,
        "u_max_pairs": u_max_pairs,
        "seed": seed,
        "sampled_from": available if available > n else None,
        "seconds": round(time.monotonic() - started, 2),
        "threshold_rule": choice.as_dict() if choice else None,
        "prior_steps": prior_steps,
    }
    prior = model["probability_two_random_records_match"]
    if reasons:
        return refused("; ".join(reasons), match_prior=prior, model=model,
                       mu_table=mu_table(model), training=training)  # fmt: skip
    assert choice is not None
    # the names' frequencies over every record the model was trained from, not the sample:
    # what scoring counted on these records before, so tonight's links are what they were
    model[term_frequencies.KEY] = term_frequencies.of_records(every_record, model)
    return ModelVersion(
        match_prior=prior,
        threshold=choice.threshold,
        status="accepted",
        reason=None,
        model=model,
        mu_table=mu_table(model),
        training=training,
        **base,
    )


def training_sample(records: pa.Table, limit: int) -> pa.Table:
    """At most `limit` of `records`, the same ones every time: those whose record key hashes
    lowest (md5), in their input order (u sampling is seeded on it). A uniform sample of records
    keeps what the fit estimates — m and u per comparison level, the prior (expected matches over
    all pairs: both scale with the square of the share kept) and the score distribution the
    threshold is read from — while the pairs to compare shrink with that square."""
    if records.num_rows <= limit:
        return records
    digests = np.array(
        [hashlib.md5(str(k).encode()).digest() for k in records.column("unique_id").to_pylist()],
        dtype="S16",
    )
    # the `limit` lowest digests (numpy's partition, then their rows in input order); S16
    # values order as the digests' bytes do
    lowest = np.argpartition(digests, limit - 1)[:limit]
    return records.take(np.sort(lowest))


def _logit2(p: float) -> float:
    return math.log2(p / (1 - p))


def _prior_and_threshold(
    records: pa.Table, model: dict[str, Any], prior_recall: float, min_precision: float
) -> tuple[list[float], ThresholdChoice | None]:
    """Re-estimate the match prior from the fitted model itself (in place), then choose the
    threshold; returns the priors tried, first to last, and the threshold choice.

    The deterministic rules' estimate assumes they find `prior_recall` of the true pairs: on
    clean data they find more, on noisy data (typos in names and birth dates, missing fields)
    far fewer, and a prior several times too low makes every probability too low — the
    threshold rule then links only the pairs that agree on nearly everything. With m and u
    fixed, the prior that agrees with the data is the one equal to the share of matches the
    model expects among all record pairs (the M step of expectation-maximisation for the prior
    alone): matching pairs outside the blocked pairs score ~0 and do not count. Iterated from
    the deterministic estimate until it moves less than PRIOR_TOLERANCE (relative), at most
    PRIOR_STEPS times; never below the deterministic rules' own count (the pairs they found
    are there). The blocked pairs are scored once: a pair's Bayes factor does not depend on
    the prior (match weight = log2 Bayes factor + logit2(prior)), so each step is one sum."""
    n = records.num_rows
    pairs = n * (n - 1) / 2
    start = model["probability_two_random_records_match"]
    floor = start * prior_recall  # the pairs the deterministic rules found
    steps = [start]
    # only the match weights are read: scored as prediction scores (no values copied out)
    linker, scratch = probabilistic._linker(records, probabilistic.scoring_settings(model))
    try:
        scored = linker.inference.predict()
        scratch.execute(
            f"create table bayes as select match_weight - {_logit2(start)!r} as b "
            f"from {scored.physical_name}"
        )

        def probability(prior: float) -> str:
            return f"1 / (1 + pow(2, -(b + {_logit2(prior)!r})))"

        for _ in range(PRIOR_STEPS):
            expected = scratch.execute(
                f"select coalesce(sum({probability(steps[-1])}), 0) from bayes"
            ).fetchall()[0][0]
            new = min(max(float(expected) / pairs, floor), 0.5)
            steps.append(new)
            if abs(new - steps[-2]) <= PRIOR_TOLERANCE * steps[-2]:
                break
        prior = steps[-1]
        model["probability_two_random_records_match"] = prior
        total = scratch.execute(
            f"select coalesce(sum({probability(prior)}), 0) from bayes"
        ).fetchall()[0][0]
        high = scratch.execute(
            f"select {probability(prior)} as p from bayes where {probability(prior)} >= "
            f"{SEARCH_FROM}"
        ).fetchnumpy()["p"]
    finally:
        scratch.close()
    return steps, choose_threshold(np.asarray(high), min_precision, float(total))


# ------------------------------------------------------------------------------------------------
# The versioned store: audit.identity_models
# ------------------------------------------------------------------------------------------------

DDL = f"""
create table if not exists {TABLE} (
    version integer not null,
    trained_at timestamp not null,
    as_of date not null,
    records bigint not null,
    match_prior double,
    threshold double,
    status varchar not null,
    reason varchar,
    settings_hash varchar,
    model_json varchar,
    mu_table json,
    training json
)
"""
COLUMNS = (
    "version, trained_at, as_of, records, match_prior, threshold, status, reason, "
    "settings_hash, model_json, mu_table, training"
)


def ensure_table(con: Connection) -> None:
    con.execute("create schema if not exists audit")
    con.execute(DDL)


def save(con: Connection, trained: ModelVersion) -> ModelVersion:
    """Append `trained` as the next version (refused fits too: the record says why)."""
    ensure_table(con)
    version = con.execute(f"select coalesce(max(version), 0) + 1 from {TABLE}").fetchall()[0][0]
    con.execute(
        f"insert into {TABLE} ({COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            version, trained.trained_at, trained.as_of, trained.records, trained.match_prior,
            trained.threshold, trained.status, trained.reason, trained.settings_hash,
            json.dumps(trained.model, sort_keys=True) if trained.model else None,
            json.dumps(trained.mu_table), json.dumps(trained.training, default=str),
        ],
    )  # fmt: skip
    return ModelVersion(**{**trained.__dict__, "version": version})


def _row(row: tuple) -> ModelVersion:
    version, trained_at, as_of, records, prior, threshold, status, reason, digest = row[:9]
    model, mu, training = row[9:]
    return ModelVersion(
        version=version, trained_at=trained_at, as_of=as_of, records=records, match_prior=prior,
        threshold=threshold, status=status, reason=reason,
        model=_json(model) if model else None, mu_table=_json(mu) if mu else [],
        training=_json(training) if training else {}, settings_hash=digest or "",
    )  # fmt: skip


def _json(value: Any) -> Any:
    """A JSON column's value: text on DuckDB, already decoded by psycopg2 on Postgres."""
    return json.loads(value) if isinstance(value, str) else value


def _exists(con: Connection) -> bool:
    return table_exists(con, "audit", "identity_models")


def active(con: Connection) -> ModelVersion | None:
    """The model in use: the latest accepted version (None: the shipped fixed model)."""
    if not _exists(con):
        return None
    rows = con.execute(
        f"select {COLUMNS} from {TABLE} where status = 'accepted' order by version desc limit 1"
    ).fetchall()
    return _row(rows[0]) if rows else None


def latest(con: Connection) -> ModelVersion | None:
    """The latest training attempt, accepted or refused."""
    if not _exists(con):
        return None
    rows = con.execute(f"select {COLUMNS} from {TABLE} order by version desc limit 1").fetchall()
    return _row(rows[0]) if rows else None


def due(con: Connection, as_of: dt.date, config: Probabilistic) -> str | None:
    """Why the model should be retrained at `as_of` (None: the accepted one is current)."""
    current = active(con)
    if current is None:
        return "no trained model yet"
    if current.settings_hash != settings_hash(config):
        return f"the configured comparisons or blocking changed since v{current.version}"
    model = current.model or {}
    if term_frequencies.columns(model) and term_frequencies.KEY not in model:
        # trained before models kept their names' frequencies: with them a night scores only
        # the pairs of new and changed records (scoring_state.py)
        return f"v{current.version} keeps no term frequencies"
    age = (as_of - current.as_of).days
    if age >= config.retrain_after_days:
        return (
            f"v{current.version} was trained on as_of {current.as_of.isoformat()}, {age} days "
            f"before (probabilistic.retrain_after_days: {config.retrain_after_days})"
        )
    return None


@dataclass(frozen=True)
class Outcome:
    """What a training step did: the attempt (None when not due) and the model now in use."""

    attempt: ModelVersion | None
    in_use: ModelVersion | None
    why: str | None

    @property
    def refused(self) -> bool:
        return self.attempt is not None and not self.attempt.accepted

    def summary(self) -> str:
        using = self.in_use.describe() if self.in_use else "the shipped fixed model"
        if self.attempt is None:
            return f"not retrained (current); in use: {using}"
        if self.refused:
            return f"training refused: {self.attempt.reason}. In use: {using}"
        return f"trained ({self.why}): {using}"


def train(
    con: Connection,
    as_of: dt.date,
    config: Probabilistic,
    force: bool = False,
) -> Outcome:
    """Retrain when due (or forced) on the warehouse's records and store the version."""
    why = "forced" if force else due(con, as_of, config)
    if why is None:
        return Outcome(None, active(con), None)
    records = probabilistic.candidates(con)
    attempt = save(con, fit(records, config, as_of))
    log.info("identity model: %s", attempt.describe())
    return Outcome(attempt, active(con), why)


def model_in_use(con: Connection, config: Probabilistic) -> tuple[Any, float, str]:
    """(model, threshold, label) for prediction: the latest accepted trained model with its
    threshold, else the shipped fixed model at FIXED_THRESHOLD; a configured threshold
    overrides either."""
    current = active(con)
    if current is None:
        model, threshold, label = probabilistic.MODEL_PATH, FIXED_THRESHOLD, "fixed"
    else:
        model, threshold, label = current.model, current.threshold, f"v{current.version}"
    if config.threshold is not None:
        threshold = config.threshold
    return model, float(threshold), label


# The shipped fixed model's threshold (chosen on the 50k demo: docs/identity.md), used only
# while no trained model exists.
FIXED_THRESHOLD = 0.9995
