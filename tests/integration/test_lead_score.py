"""Lead score on the generator's lead_score profile (planted logistic conversion model): the score's
ROC AUC on the evaluation window is within 0.02 of the planted model's own AUC, its calibration is
close, the planted coefficients are recovered in sign and rough size, and a window without
converters is refused with the last good scores kept.

Sample: 6,000 generated persons, seed 7 (4,113 shop accounts in the evaluation window, 351
converters). The warehouse tables the lead score reads (staging, customer_id_map, identity
records, customer_360) are built straight from the landing files with the true person as
customer_id, except that a web device joins its person only through its identify call (as identity
resolution links it); a full nightly on this profile is measured in docs/insight.md. The test
runs lead_score.run() — SQL features, fits, evaluation, tables — as the asset does.
"""

import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from demo.generator import generate
from demo.planted_propensity import PropensityTruth, roc_auc
from orchestration.insight import lead_score as ls
from orchestration.insight import refit

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="lead_score")]

AS_OF = dt.date(2026, 11, 21)
CUSTOMERS = 6000
SEED = 7
TS = "'%Y-%m-%dT%H:%M:%SZ'"


def _file(landing: Path, source: str, entity: str) -> str:
    return str(next((landing / source / entity).glob("dt=*/part-00000.*")))


def _json(landing: Path, source: str, entity: str, columns: list[str]) -> str:
    cols = ", ".join(f"'{c}': 'VARCHAR'" for c in columns)
    path = _file(landing, source, entity)
    return f"read_json('{path}', format = 'newline_delimited', columns = {{{cols}}})"


def _csv(landing: Path, source: str, entity: str) -> str:
    return f"read_csv('{_file(landing, source, entity)}', all_varchar = true)"


def build_warehouse(root: Path, path: Path) -> duckdb.DuckDBPyConnection:
    """The tables lead_score reads, from the landing files (quarantined rows out, latest version
    per key), customer_id = the true person; a web device belongs to the person of the shop
    account it identifies as, else it is a customer of its own."""
    landing, truth = root / "landing", root / "truth"
    con = duckdb.connect(str(path))
    for schema in ("staging", "intermediate", "marts"):
        con.execute(f"create schema {schema}")
    con.execute(
        f"create table bad as select record_id from read_csv('{truth / 'defects.csv'}', "
        "all_varchar = true) where kind = 'quarantine'"
    )
    con.execute(
        f"create table ground as select * from read_csv('{truth / 'ground_truth.csv'}', "
        "all_varchar = true)"
    )
    shop_cols = ["shop_customer_id", "email", "created_at", "updated_at"]
    con.execute(
        f"""
        create table staging.stg_shop__customers as
        select shop_customer_id, nullif(lower(trim(email)), '') as email_normalized,
            strptime(created_at, {TS}) as created_at
        from {_json(landing, "shop", "customers", shop_cols)}
        where shop_customer_id not in (select record_id from bad)
        qualify row_number() over (partition by shop_customer_id order by updated_at desc) = 1
        """
    )
    order_cols = ["order_id", "shop_customer_id", "ordered_at", "status", "updated_at"]
    con.execute(
        f"""
        create table intermediate.int_activity__orders as
        select order_id, shop_customer_id, strptime(ordered_at, {TS}) as ordered_at,
            status in ('paid', 'shipped', 'delivered') as is_revenue
        from {_json(landing, "shop", "orders", order_cols)}
        where order_id not in (select record_id from bad)
        qualify row_number() over (partition by order_id order by updated_at desc) = 1
        """
    )
    web_cols = ["anonymous_id", "user_id", "event_name", "occurred_at"]
    con.execute(
        f"""
        create table intermediate.int_activity__web_events as
        select anonymous_id, nullif(user_id, '') as user_id, event_name,
            try_strptime(occurred_at, {TS}) as occurred_at
        from {_json(landing, "web", "events", web_cols)}
        where try_strptime(occurred_at, {TS}) is not null
        """
    )
    con.execute(
        f"""
        create table intermediate.int_activity__email_engagement as
        select nullif(lower(trim(email)), '') as email_normalized, event_type,
            strptime(occurred_at, {TS}) as occurred_at
        from {_csv(landing, "email", "engagement")}
        """
    )
    con.execute(
        f"""
        create table staging.stg_loyalty__members as
        select member_id as loyalty_member_id, tier as loyalty_tier,
            nullif(lower(trim(email)), '') as email_normalized
        from {_csv(landing, "loyalty", "members")}
        where member_id not in (select record_id from bad)
        """
    )
    con.execute(
        f"""
        create table intermediate.int_identity__records as
        select 'crm:' || contact_id as record_key, nullif(lower(trim(email)), '')
            as email_normalized
        from {_csv(landing, "crm", "contacts")}
        where is_deleted <> 'true' and contact_id not in (select record_id from bad)
        union all
        select 'shop:' || shop_customer_id, email_normalized from staging.stg_shop__customers
        union all
        select 'loyalty:' || loyalty_member_id, email_normalized from staging.stg_loyalty__members
        """
    )
    con.execute(
        """
        create table marts.customer_id_map as
        with identified as (
            select distinct anonymous_id, user_id from intermediate.int_activity__web_events
            where user_id is not null
        )
        select ground.source, ground.entity, ground.source_record_id,
            ground.source || ':' || ground.source_record_id as record_key,
            case when ground.source <> 'web' then ground.person_id
                 when shop.person_id is not null then shop.person_id
                 else 'anon:' || ground.source_record_id end as customer_id
        from ground
        left join identified on ground.source = 'web'
            and ground.source_record_id = identified.anonymous_id
        left join ground as shop on shop.source = 'shop'
            and shop.source_record_id = identified.user_id
        where ground.source_record_id not in (select record_id from bad)
        """
    )
    con.execute(
        "create table marts.customer_360 as select distinct customer_id from marts.customer_id_map"
    )
    return con


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("lead_score")
    generate(CUSTOMERS, SEED, AS_OF, root / "landing", root / "truth", progress=None,
             propensity_truth=PropensityTruth())  # fmt: skip
    con = build_warehouse(root, root / "warehouse.duckdb")
    result = ls.run(con, AS_OF, "run-1", ls.LeadScoreConfig())
    parameters = json.loads((root / "truth" / "lead_score_parameters.json").read_text())
    truth = pd.read_csv(root / "truth" / "lead_score_customers.csv", dtype={"person_id": str})
    yield con, result, parameters, truth
    con.close()


def test_roc_auc_is_within_two_points_of_the_planted_models_own(planted):
    # Measured (6,000 persons, seed 7): see docs/insight.md. The planted AUC is the planted
    # probability's AUC on the same window (features at as_of - 28 days, orders in the last 28).
    con, result, parameters, truth = planted
    assert result.status == "ok", result.message
    e = result.evaluation
    planted_eval = parameters["windows"]["eval"]
    assert e.customers > 3500 and e.positives > 250
    assert abs(e.customers - planted_eval["customers"]) <= 0.01 * planted_eval["customers"]
    assert abs(e.roc_auc - planted_eval["planted_roc_auc"]) <= 0.02
    # the planted model's AUC on exactly the customers the lead score evaluated
    scored = con.execute(
        f"select customer_id from {ls.TRAITS_TABLE} where lead_score is not null"
    ).df()
    assert len(scored) >= e.customers  # everyone with a shop account at as_of
    evaluated = truth[truth["window"] == "eval"]
    assert abs(e.positives - int(evaluated["converted"].sum())) <= 5
    same = roc_auc(evaluated["true_probability"], evaluated["converted"])
    assert abs(e.roc_auc - same) <= 0.02


def test_calibration_is_close_to_the_planted_probabilities(planted):
    _, result, parameters, _ = planted
    e = result.evaluation
    planted_eval = parameters["windows"]["eval"]
    # mean score within 2.5 points of the observed rate, Brier within 0.005 of the planted one
    assert abs(e.mean_score - e.base_rate) <= 0.025
    assert e.brier <= planted_eval["planted_brier"] + 0.005
    assert len(e.reliability) == 10
    top, bottom = e.reliability[-1], e.reliability[0]
    assert top["observed_rate"] > 3 * bottom["observed_rate"]


def test_planted_coefficients_are_recovered(planted):
    _, result, parameters, _ = planted
    # Per unit of the raw inputs. Sessions and product views come from the same sessions and are
    # strongly correlated, so only their sum is identified well (seeds 1, 2, 7: 0.59-0.88 for a
    # planted 0.8); every other coefficient has the planted sign.
    intercept, per_unit = result.model.raw_coefficients()
    planted_coef = parameters["coefficients"]
    for name in ("cart_adds_30d", "email_clicks_90d", "orders_365d", "years_since_last_order",
                 "loyalty_tier_rank"):  # fmt: skip
        assert np.sign(per_unit[name]) == np.sign(planted_coef[name]), (name, per_unit[name])
    web = ("web_sessions_30d", "product_views_30d")
    assert abs(sum(per_unit[n] for n in web) - sum(planted_coef[n] for n in web)) < 0.4
    assert abs(intercept - parameters["intercept"]) < 0.5


def test_mart_tiers_and_reasons_and_audit_row(planted):
    con, result, _, _ = planted
    rows = con.execute(
        f"select lead_tier, count(*), min(lead_score), max(lead_score) from {ls.TRAITS_TABLE} "
        "group by lead_tier order by lead_tier"
    ).fetchall()
    by_tier = {r[0]: r for r in rows}
    assert set(by_tier) == {None, "pql", "mql", "cold"}
    assert by_tier["pql"][2] >= 0.30 and by_tier["cold"][3] < 0.10
    reasons = con.execute(
        f"select top_reasons, reason_codes from {ls.TRAITS_TABLE} where lead_tier = 'pql' limit 20"
    ).fetchall()
    assert all(r[0] and r[1] for r in reasons)
    assert any("added to cart" in r[0] or "clicked" in r[0] for r in reasons)
    audit = con.execute(
        f"select status, roc_auc, brier, reliability from {ls.FIT_TABLE} where as_of = ?",
        [AS_OF],
    ).fetchone()
    assert audit[0] == "ok" and math.isclose(audit[1], result.evaluation.roc_auc)
    assert len(json.loads(audit[3])) == 10


def test_a_window_without_converters_is_refused_and_keeps_the_last_good_scores(planted):
    con = planted[0]
    before = con.execute(f"select * from {ls.TRAITS_TABLE} order by customer_id").df()
    # no order at all after the evaluation cut-off: the scoring window has a single class
    cutoff = ls.as_of_end(AS_OF) - dt.timedelta(days=28)
    con.execute(
        "create table staging.orders_kept as select * from intermediate.int_activity__orders"
    )
    con.execute("delete from intermediate.int_activity__orders where ordered_at > ?", [cutoff])
    try:
        refused = ls.run(con, AS_OF, "run-2", ls.LeadScoreConfig())
    finally:  # the other tests read the fixture's warehouse: put the orders back
        con.execute("delete from intermediate.int_activity__orders")
        con.execute(
            "insert into intermediate.int_activity__orders select * from staging.orders_kept"
        )
        con.execute("drop table staging.orders_kept")
    assert refused.status == "refused"
    assert "single class in the training window: no customer converted" in refused.message
    assert "last good scores kept" in refused.message
    after = con.execute(f"select * from {ls.TRAITS_TABLE} order by customer_id").df()
    pd.testing.assert_frame_equal(before, after)
    status, message = con.execute(
        f"select status, message from {ls.FIT_TABLE} where as_of = ?", [AS_OF]
    ).fetchone()
    assert status == "refused" and "no customer converted" in message
    assert ls.run(con, AS_OF, "run-3", ls.LeadScoreConfig()).status == "ok"  # as before


def test_later_nights_score_with_the_fit_in_use_until_a_refit_is_due(planted, tmp_path):
    """On a copy of the fixture's warehouse: within refit_after_days a night scores its own
    features with the last fit (its coefficients and evaluation copied); the cadence 0, a
    changed setting and a backfill fit again."""
    path = (
        planted[0]
        .execute("select path from duckdb_databases() where database_name = current_database()")
        .fetchone()[0]
    )
    con = build_warehouse(Path(path).parent, tmp_path / "copy.duckdb")
    weekly = refit.RefitConfig(refit_after_days=7)
    cfg = ls.LeadScoreConfig()
    first = ls.run(con, AS_OF, "run-1", cfg, weekly)
    assert first.status == "ok" and not first.reused and first.fitted_as_of == AS_OF
    next_day = AS_OF + dt.timedelta(days=3)
    later = ls.run(con, next_day, "run-2", cfg, weekly)
    assert later.status == "ok" and later.reused and later.fitted_as_of == AS_OF
    assert later.model.coefficients() == first.model.coefficients()
    assert later.evaluation.roc_auc == first.evaluation.roc_auc
    # scored on the features at its own as_of, with the first fit's model
    x = ls.design(ls.load_features(con, ls.as_of_end(next_day)))
    scores = con.execute(
        f"select customer_id, lead_score from {ls.TRAITS_TABLE} where lead_score is not null "
        "order by customer_id"
    ).df()
    assert np.allclose(scores["lead_score"], first.model.predict(x.loc[scores["customer_id"]]))
    row = con.execute(
        f"select fitted_as_of, intercept, reliability, cutoff_train from {ls.FIT_TABLE} "
        "where as_of = ?",
        [next_day],
    ).fetchone()
    assert row[0] == AS_OF and row[1] == first.model.intercept
    assert len(json.loads(row[2])) == 10 and row[3] < ls.as_of_end(AS_OF)
    assert not ls.run(con, next_day, "run-3", cfg, refit.RefitConfig(refit_after_days=0)).reused
    narrower = ls.LeadScoreConfig(window_days=21)
    assert ls.run(con, next_day + dt.timedelta(days=1), "run-4", narrower, weekly).fitted_as_of == (
        next_day + dt.timedelta(days=1)
    )
    backfill = AS_OF - dt.timedelta(days=1)
    assert ls.run(con, backfill, "run-5", cfg, weekly).fitted_as_of == backfill
    # a due fit refused: tonight is scored with the newest accepted fit, and says so
    month_later = AS_OF + dt.timedelta(days=30)

    def refuse(*args, **kwargs):
        raise ls.FitRefused("single class in the training window (forced)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ls, "fit", refuse)
        refused = ls.run(con, month_later, "run-6", cfg, weekly)
    assert refused.status == "refused" and refused.fitted_as_of == next_day
    assert f"the fit of {next_day} stays in use" in refused.message
    assert refused.model.coefficients() != first.model.coefficients()  # run-3 refitted
    as_of_scored = con.execute(
        f"select distinct as_of from {ls.TRAITS_TABLE} where lead_score is not null"
    ).fetchall()
    assert as_of_scored == [(month_later,)]
    con.close()
