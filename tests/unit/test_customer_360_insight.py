"""marts.customer_360_insight: one row per customer_360 row, the traits equal to the insight marts
they come from, and the asset's grain check fails when a mart fans the join out."""

import datetime as dt

import dagster as dg
import duckdb
import pytest

from orchestration.defs.insight.customer_360_insight import GRAIN_CHECK, customer_360_insight
from orchestration.defs.resources import Warehouse
from orchestration.insight import customer_360_insight as view

AS_OF = dt.date(2026, 3, 10)


def _warehouse(path) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        """
        create table marts.customer_360 as
        select 'c' || lpad(cast(i as varchar), 3, '0') as customer_id,
            case when i % 3 = 0 then 'Europe/Paris' else 'UTC' end as time_zone,
            i * 10 as order_count, date '2026-03-10' as as_of
        from range(1, 41) as t(i)
        """
    )
    # CLV for every customer, traits null for non-buyers (every 4th)
    con.execute(
        """
        create table marts.customer_clv as
        select customer_id,
            case when order_count % 40 = 0 then null else order_count / 100.0 end
                as expected_purchases_90d,
            case when order_count % 40 = 0 then null else 1 - order_count / 1000.0 end as p_alive,
            case when order_count % 40 = 0 then null else order_count * 1.5 end
                as predicted_value_12m,
            as_of
        from marts.customer_360
        """
    )
    # lead scores kept from an earlier night: the five newest customers have no row
    con.execute(
        """
        create table marts.customer_lead_score as
        select customer_id, order_count / 400.0 as lead_score,
            case when order_count >= 300 then 'pql' when order_count >= 100 then 'mql'
                else 'cold' end as lead_tier,
            'viewed ' || order_count || ' products' as top_reasons,
            'product_views_30d' as reason_codes, date '2026-03-09' as as_of
        from marts.customer_360 where order_count <= 350
        """
    )
    con.execute(
        """
        create table marts.customer_send_time as
        select customer_id, cast(order_count % 168 as integer) as best_hour_of_week,
            'Mon ' || lpad(cast(order_count % 24 as varchar), 2, '0') || ':00' as best_local_time,
            time_zone, cast(order_count as bigint) as n_events, 0.2 as confidence,
            'medium' as confidence_level, as_of
        from marts.customer_360
        """
    )
    con.close()


@pytest.fixture()
def warehouse_path(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    _warehouse(path)
    return path


def test_one_row_per_customer_and_traits_equal_their_marts(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    view.build(con)
    counts = view.check(con)
    assert counts["rows"] == counts["distinct_customers"] == counts["customer_360_rows"] == 40
    assert counts["customers_with_lead_score"] == 35
    assert counts["customers_with_p_alive"] == 30
    # every customer_360 column, unchanged, in order, then the traits
    base = [r[0] for r in con.execute("describe marts.customer_360").fetchall()]
    names = [r[0] for r in con.execute(f"describe {view.VIEW}").fetchall()]
    assert names == base + [t[0] for t in view.TRAITS]
    for name, mart, column, _ in view.TRAITS:
        diff = con.execute(
            f"""
            select count(*) from {view.VIEW} as v
            left join {mart} as m on v.customer_id = m.customer_id
            where v.{name} is distinct from m.{column}
            """
        ).fetchone()[0]
        assert diff == 0, name
    row = con.execute(
        f"select lead_score, lead_tier, lead_score_as_of, p_alive, best_local_time "
        f"from {view.VIEW} where customer_id = 'c038'"
    ).fetchone()
    assert row == (None, None, None, pytest.approx(0.62), "Mon 20:00")
    con.close()


def test_view_follows_the_marts_rebuilt_after_it(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    view.build(con)
    con.execute("create or replace table marts.customer_clv as select * from marts.customer_clv")
    con.execute("update marts.customer_clv set p_alive = 0.5 where customer_id = 'c001'")
    assert con.execute(
        f"select p_alive from {view.VIEW} where customer_id = 'c001'"
    ).fetchone() == (0.5,)
    con.close()


def test_columns_are_described(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    view.build(con)
    described = {name: text for name, _, text in view.columns(con)}
    con.close()
    # customer_360's descriptions come from its dbt schema
    assert described["time_zone"] and described["time_zone"] != "From customer_360."
    assert "Gamma-Gamma" in described["predicted_value_12m"]
    assert all(described.values())


def _materialize(path):
    resources = {"warehouse": Warehouse(path=str(path), landing_dir=str(path.parent))}
    return dg.materialize(
        [customer_360_insight],
        resources=resources,
        partition_key=AS_OF.isoformat(),
        raise_on_error=False,
    )


def test_asset_metadata_and_grain_check(warehouse_path):
    result = _materialize(warehouse_path)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    mat = event.materialization
    assert mat.metadata["dagster/row_count"].value == 40
    schema = mat.metadata["dagster/column_schema"].value
    assert [c.name for c in schema.columns][-len(view.TRAITS) :] == [t[0] for t in view.TRAITS]
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == GRAIN_CHECK and check.passed


def test_grain_check_fails_when_a_mart_fans_the_join_out(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    con.execute(
        "insert into marts.customer_send_time select * from marts.customer_send_time "
        "where customer_id = 'c002'"
    )
    con.close()
    result = _materialize(warehouse_path)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["rows"].value == 41
