"""Lead score model code (orchestration/insight/lead_score.py): the fit recovers a known logistic
model, degenerate windows are refused with a clear message, evaluation (ROC AUC, Brier,
reliability), tiers, reasons in plain words, input transforms, config, and a run on a warehouse
without orders. The planted-profile check is tests/integration/test_lead_score.py."""

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration.insight import lead_score as ls

TRUE_COEF = np.array([0.5, 0.3, 0.9, 0.7, 0.6, -1.4, 0.3])  # per unit of the raw inputs
TRUE_INTERCEPT = -2.5


def _synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "web_sessions_30d": np.log1p(rng.poisson(2.0, n)),
            "product_views_30d": np.log1p(rng.poisson(1.5, n)),
            "cart_adds_30d": np.log1p(rng.poisson(0.4, n)),
            "email_clicks_90d": np.log1p(rng.poisson(0.5, n)),
            "orders_365d": np.log1p(rng.poisson(0.8, n)),
            "years_since_last_order": rng.uniform(0, 1, n),
            "loyalty_tier_rank": rng.integers(0, 5, n).astype(float),
        },
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )
    p = 1 / (1 + np.exp(-(TRUE_INTERCEPT + x.to_numpy() @ TRUE_COEF)))
    return x, p, rng.random(n) < p


def test_fit_recovers_a_known_logistic_model():
    x, _, y = _synthetic(40_000, 1)
    model = ls.fit(x, y)
    intercept, per_unit = model.raw_coefficients()
    np.testing.assert_allclose(list(per_unit.values()), TRUE_COEF, atol=0.12)
    assert abs(intercept - TRUE_INTERCEPT) < 0.15
    # on fresh data the fitted score ranks as well as the true probability (same sample)
    x2, p2, y2 = _synthetic(40_000, 2)
    fitted = ls.evaluate(model.predict(x2), y2)
    truth = ls.evaluate(p2, y2)
    assert abs(fitted.roc_auc - truth.roc_auc) < 0.005
    assert abs(fitted.brier - truth.brier) < 0.001
    assert model.customers == 40_000 and model.positives == int(y.sum())


def test_contributions_are_coefficient_times_standardized_value():
    x, _, y = _synthetic(5_000, 3)
    model = ls.fit(x, y)
    c = model.contributions(x)
    z = (x.to_numpy() - x.to_numpy().mean(axis=0)) / x.to_numpy().std(axis=0)
    np.testing.assert_allclose(c, z * model.coef, rtol=1e-9)
    logit = model.intercept + c.sum(axis=1)
    np.testing.assert_allclose(model.predict(x), 1 / (1 + np.exp(-logit)))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([False] * 200, "single class in the training window: no customer converted (200"),
        ([True] * 200, "single class in the training window: every customer converted"),
        ([True] * 5 + [False] * 195, "too few converters in the training window: 5 of 200"),
        ([False] * 3 + [True] * 197, "too few non-converters in the training window: 3 of 200"),
    ],
)
def test_degenerate_windows_are_refused_with_a_clear_message(labels, message):
    x, _, _ = _synthetic(200, 4)
    with pytest.raises(ls.FitRefused, match=message.replace("(", r"\(")):
        ls.fit(x, np.array(labels), min_positives=10)


def test_no_customers_is_refused():
    x, _, _ = _synthetic(10, 5)
    with pytest.raises(ls.FitRefused, match="no customers with a shop account"):
        ls.fit(x.iloc[:0], np.array([], dtype=bool))


def test_a_constant_input_gets_no_weight_and_no_division_by_zero():
    x, _, y = _synthetic(3_000, 6)
    x["loyalty_tier_rank"] = 0.0
    model = ls.fit(x, y)
    assert model.coefficients()["loyalty_tier_rank"] == 0.0
    assert np.isfinite(model.predict(x)).all()


def test_evaluate_auc_brier_and_reliability_table():
    score = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    converted = np.array([0, 0, 1, 0, 1, 0, 1, 1], dtype=bool)
    e = ls.evaluate(score, converted, bins=4)
    # pairs (positive, negative) ranked right: 13 of 16
    assert math.isclose(e.roc_auc, 13 / 16)
    assert math.isclose(e.brier, float(np.mean((score - converted) ** 2)))
    assert [r["customers"] for r in e.reliability] == [2, 2, 2, 2]
    assert [r["observed_rate"] for r in e.reliability] == [0.0, 0.5, 0.5, 1.0]
    assert math.isclose(e.reliability[0]["mean_score"], 0.15)
    assert "| 4 | 2 | 0.750 | 1.000 |" in e.reliability_markdown()
    single = ls.evaluate(score, np.zeros(8, dtype=bool))
    assert math.isnan(single.roc_auc) and single.base_rate == 0.0


def test_tiers_follow_the_thresholds():
    cfg = ls.LeadScoreConfig(pql=0.3, mql=0.1)
    got = ls.tiers(np.array([0.0, 0.099, 0.1, 0.29, 0.3, 0.95]), cfg)
    assert got.tolist() == ["cold", "cold", "mql", "mql", "pql", "pql"]


def test_design_transforms_counts_recency_and_tier():
    raw = pd.DataFrame(
        {
            "web_sessions_30d": [0, 3],
            "product_views_30d": [0, 1],
            "cart_adds_30d": [0, 2],
            "email_clicks_90d": [0, 0],
            "orders_365d": [0, 1],
            "days_since_last_order": [np.nan, 36.5],
            "loyalty_tier_rank": [0, 3],
        },
        index=pd.Index(["a", "b"], name="customer_id"),
    )
    x = ls.design(raw)
    assert list(x.columns) == list(ls.FEATURES)
    assert x.loc["b", "web_sessions_30d"] == pytest.approx(math.log(4))
    assert x.loc["a", "years_since_last_order"] == 1.0  # never ordered: the cap
    assert x.loc["b", "years_since_last_order"] == pytest.approx(0.1)
    assert x.loc["b", "loyalty_tier_rank"] == 3.0


def test_top_reasons_name_the_largest_positive_contributions_in_plain_words():
    raw = pd.DataFrame(
        {
            "web_sessions_30d": [1, 0],
            "product_views_30d": [4, 0],
            "cart_adds_30d": [2, 0],
            "email_clicks_90d": [1, 0],
            "orders_365d": [0, 0],
            "days_since_last_order": [12.7, np.nan],
            "loyalty_tier_rank": [3, 0],
        },
        index=pd.Index(["a", "b"], name="customer_id"),
    )
    texts = ls.reason_texts(raw)
    contributions = np.array(
        [[0.1, 0.2, 0.9, -0.3, -0.1, 0.5, 0.05], [-0.2, -0.1, -0.4, -0.3, -0.1, -0.6, -0.2]]
    )
    reasons, codes = ls.top_reasons(contributions, raw, 3)
    assert reasons[0] == (
        "added to cart 2 times in the last 30 days; last order 12 days ago; "
        "viewed 4 products in the last 30 days"
    )
    assert codes[0] == "cart_adds_30d,years_since_last_order,product_views_30d"
    assert reasons[1] is None and codes[1] is None  # nothing pushes this customer up
    assert texts.loc["a", "web_sessions_30d"] == "1 web or app visit in the last 30 days"
    assert texts.loc["a", "email_clicks_90d"] == "clicked 1 email in the last 90 days"
    assert texts.loc["a", "loyalty_tier_rank"] == "gold loyalty tier"
    assert texts.loc["b", "years_since_last_order"] == "no order yet"
    days = raw.assign(days_since_last_order=[1.5, 0.2])
    assert ls.reason_texts(days)["years_since_last_order"].tolist() == [
        "last order 1 day ago", "last order today"]  # fmt: skip


def test_top_reasons_equal_picking_from_every_features_words():
    """Words built only for the chosen features give what choosing among all seven texts gives
    (random features and contributions, ties and all-negative rows included)."""
    rng = np.random.default_rng(5)
    n = 3000
    raw = pd.DataFrame(
        {name: rng.integers(0, 4, n) for name in ls.COUNT_FEATURES}
        | {"days_since_last_order": np.where(rng.random(n) < 0.3, np.nan, rng.random(n) * 400),
           "loyalty_tier_rank": rng.integers(0, 5, n)},
        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"),
    )  # fmt: skip
    contributions = np.round(rng.normal(size=(n, len(ls.FEATURES))), 1)  # ties on purpose
    contributions[:50] = -np.abs(contributions[:50])
    texts = ls.reason_texts(raw).to_numpy(dtype=object)
    for k in (1, 3, 7):
        reasons, codes = ls.top_reasons(contributions, raw, k)
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
        for i in range(n):
            chosen = [j for j in order[i] if contributions[i, j] > 0]
            assert reasons[i] == ("; ".join(texts[i, j] for j in chosen) or None)
            assert codes[i] == (",".join(ls.FEATURES[j] for j in chosen) or None)


def test_config_from_yaml(tmp_path):
    path = tmp_path / "lead_score.yml"
    path.write_text("window_days: 14\ntiers:\n  pql: 0.5\n  mql: 0.2\ntop_reasons: 2\n")
    cfg = ls.load_config(path)
    assert (cfg.window_days, cfg.pql, cfg.mql, cfg.top_reasons) == (14, 0.5, 0.2, 2)
    assert ls.load_config(tmp_path / "missing.yml") == ls.LeadScoreConfig()
    assert ls.load_config() == ls.LeadScoreConfig(window_days=28, pql=0.3, mql=0.1)
    path.write_text("window_day: 14\n")
    with pytest.raises(ValueError, match="unknown lead score settings"):
        ls.load_config(path)
    with pytest.raises(ValueError, match="mql <= pql"):
        ls.LeadScoreConfig(pql=0.1, mql=0.2)


def _tiny_warehouse(path) -> duckdb.DuckDBPyConnection:
    """The tables lead_score reads, two customers with a shop account, no orders."""
    con = duckdb.connect(str(path))
    for schema in ("staging", "intermediate", "marts"):
        con.execute(f"create schema {schema}")
    con.execute(
        "create table staging.stg_shop__customers as select * from (values "
        "('S1', timestamp '2026-01-01'), ('S2', timestamp '2026-02-01')) "
        "as t(shop_customer_id, created_at)"
    )
    con.execute(
        "create table intermediate.int_activity__orders (order_id varchar, shop_customer_id varchar, "
        "ordered_at timestamp, is_revenue boolean)"
    )
    con.execute(
        "create table intermediate.int_activity__web_events as select * from (values "
        "('a1', 'cart_add', timestamp '2026-11-20 10:00')) "
        "as t(anonymous_id, event_name, occurred_at)"
    )
    con.execute(
        "create table intermediate.int_activity__email_engagement (email_normalized varchar, "
        "event_type varchar, occurred_at timestamp)"
    )
    con.execute(
        "create table staging.stg_loyalty__members (loyalty_member_id varchar, "
        "loyalty_tier varchar)"
    )
    con.execute(
        "create table intermediate.int_identity__records (record_key varchar, "
        "email_normalized varchar)"
    )
    con.execute(
        "create table marts.customer_id_map as select * from (values "
        "('shop', 'customers', 'S1', 'r1', 'C1'), ('shop', 'customers', 'S2', 'r2', 'C2'), "
        "('web', 'anonymous_ids', 'a1', 'r3', 'C1'), ('crm', 'contacts', 'X', 'r4', 'C3')) "
        "as t(source, entity, source_record_id, record_key, customer_id)"
    )
    con.execute(
        "create table marts.customer_360 as select * from (values ('C1'), ('C2'), ('C3')) "
        "as t(customer_id)"
    )
    return con


def test_run_without_orders_is_refused_and_writes_null_scores_and_the_reason(tmp_path):
    con = _tiny_warehouse(tmp_path / "w.duckdb")
    as_of = dt.date(2026, 11, 21)
    features = ls.load_features(con, ls.as_of_end(as_of))
    assert features.loc["C1", "cart_adds_30d"] == 1 and "C3" not in features.index
    result = ls.run(con, as_of, "r1", ls.LeadScoreConfig())
    assert result.status == "refused"
    assert result.message.startswith(
        "lead score fit refused: single class in the training window: no customer converted"
    )
    rows = con.execute(
        f"select customer_id, lead_score, lead_tier from {ls.TRAITS_TABLE} order by 1"
    ).fetchall()
    assert rows == [("C1", None, None), ("C2", None, None), ("C3", None, None)]
    audit = con.execute(f"select run_id, status, message, roc_auc from {ls.FIT_TABLE}").fetchall()
    assert audit == [("r1", "refused", result.message, None)]
    ls.run(con, as_of, "r2", ls.LeadScoreConfig())  # a rerun replaces the as_of's row
    assert con.execute(f"select run_id from {ls.FIT_TABLE}").fetchall() == [("r2",)]


def test_lead_score_profile_plants_only_the_orders_after_the_first_cut_off(tmp_path):
    """The generator's lead_score profile: every file but shop orders/lines is the default run's,
    orders after T1 are the planted conversions (one per converter and window, revenue
    statuses), no defect row points at a removed order, and the truth holds the planted AUC."""
    import hashlib
    import json

    from demo.generator import generate
    from demo.planted_propensity import PropensityTruth, roc_auc

    as_of = dt.date(2026, 11, 21)
    generate(1500, 5, as_of, tmp_path / "d/landing", tmp_path / "d/truth", progress=None)
    generate(1500, 5, as_of, tmp_path / "p/landing", tmp_path / "p/truth", progress=None,
             propensity_truth=PropensityTruth())  # fmt: skip

    def digests(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("part-*"))}  # fmt: skip

    default, planted = digests(tmp_path / "d/landing"), digests(tmp_path / "p/landing")
    changed = {k.split("/dt=")[0] for k in default if default[k] != planted.get(k)}
    assert changed == {"shop/orders", "shop/order_lines"}

    params = json.loads((tmp_path / "p/truth/lead_score_parameters.json").read_text())
    truth = pd.read_csv(tmp_path / "p/truth/lead_score_customers.csv")
    orders = pd.read_json(
        next((tmp_path / "p/landing/shop/orders").rglob("part-*")), lines=True, dtype=False
    )
    at = pd.to_datetime(orders["ordered_at"], utc=True, format="%Y-%m-%dT%H:%M:%SZ")
    t1, t2 = (pd.Timestamp(params[k]) for k in ("cutoff_train", "cutoff_eval"))
    late = orders[at > t1]
    assert late["status"].isin(["paid", "shipped", "delivered"]).all()
    assert late["order_id"].is_unique  # one version each, no planted defect
    for window, start, stop in (("train", t1, t2), ("eval", t2, None)):
        rows = truth[truth["window"] == window]
        in_window = late[(at[late.index] > start) & ((at[late.index] <= stop) if stop else True)]
        assert sorted(in_window["shop_customer_id"]) == sorted(
            rows.loc[rows["converted"], "shop_customer_id"]
        )
        summary = params["windows"][window]
        assert summary["conversions"] == int(rows["converted"].sum()) > 20
        assert summary["planted_roc_auc"] == pytest.approx(
            roc_auc(rows["true_probability"], rows["converted"]), abs=1e-6
        )
    defects = pd.read_csv(tmp_path / "p/truth/defects.csv", dtype=str)
    order_defects = defects[(defects["source"] == "shop") & (defects["entity"] == "orders")]
    assert order_defects["record_id"].isin(orders["order_id"]).all()
    manifest = json.loads((tmp_path / "p/truth/generate_manifest.json").read_text())
    assert manifest["rows"]["shop__orders"] == len(orders)
    assert manifest["lead_score"]["windows"] == params["windows"]
    # a default run into the same truth folder leaves no stale lead-score truth
    generate(1500, 5, as_of, tmp_path / "p/landing", tmp_path / "p/truth", progress=None)
    assert not (tmp_path / "p/truth/lead_score_parameters.json").exists()
