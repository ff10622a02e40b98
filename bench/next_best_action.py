"""Benchmark: marts.next_best_action for the shipped actions (dbt_project/actions/) over a
synthetic profile, on one DuckDB connection.

The profile is synthesised in DuckDB (seeded): customer_360 traits (revenue, recency, order count,
average order value, five time zones, 0.5 % erased), customer_clv, customer_send_time,
consent_state (email, push and sms grants and revocations), and activation.contact_history with
about one contact per customer over the last 14 nights. The figure is nba.run(): eligibility per
action, the mart and the audience view (the asset adds only the connection).

    .venv/bin/python bench/next_best_action.py --customers 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import duckdb

from orchestration.activation.records import ensure_tables
from orchestration.insight import next_best_action as nba

AS_OF = dt.date(2026, 11, 21)


def synthesise(con: duckdb.DuckDBPyConnection, customers: int) -> None:
    for schema in ("marts", "audit", "intermediate"):
        con.execute(f"create schema if not exists {schema}")
    con.execute("select setseed(0.17)")
    con.execute(
        f"""
        create table marts.customer_360 as
        select
            'c' || i as customer_id,
            case when random() < 0.9 then 'p' || i || '@x.org' end as email,
            case when random() < 0.5 then '+4930' || (1000000 + i) end as phone,
            'Ann' as first_name,
            cast(round(random() * 2000, 2) as decimal(18, 2)) as lifetime_revenue,
            cast(floor(random() * 700) as bigint) as days_since_last_order,
            cast(1 + floor(random() * 8) as bigint) as order_count,
            cast(round(20 + random() * 280, 2) as decimal(18, 2)) as average_order_value,
            ['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'Europe/London', 'UTC'][
                1 + cast(floor(random() * 5) as integer)] as time_zone,
            random() < 0.005 as is_erased,
            date '{AS_OF}' as as_of
        from range({customers}) as t(i)
        """
    )
    con.execute(
        f"""
        create table marts.customer_clv as
        select customer_id, random() as expected_purchases_90d,
            case when random() < 0.8 then random() end as p_alive,
            random() * 500 as predicted_value_12m, date '{AS_OF}' as as_of
        from marts.customer_360
        """
    )
    con.execute(
        f"""
        create table marts.customer_send_time as
        select customer_id, cast(floor(random() * 168) as integer) as best_hour_of_week,
            cast(floor(random() * 6) as bigint) as n_events, random() as confidence,
            'medium' as confidence_level, date '{AS_OF}' as as_of
        from marts.customer_360
        """
    )
    con.execute(
        "create table audit.send_time_evals as select date '2026-11-21' as as_of, 'r' as run_id, "
        "now()::timestamp as evaluated_at, 91 as population_best_hour"
    )
    con.execute(
        """
        create table marts.consent_state as
        with points as (
            select email as contact_point, channel from marts.customer_360,
                (values ('email'), ('push')) as c(channel)
            where email is not null
            union all
            select phone, 'sms' from marts.customer_360 where phone is not null
        )
        select contact_point, channel, 'marketing' as purpose,
            case when random() < 0.75 then 'granted' else 'revoked' end as consent_status,
            random() < 0.01 as is_suppressed, false as is_expired,
            false as is_erased, timestamp '2026-01-01' as consent_captured_at
        from points
        where random() < 0.7
        """
    )
    con.execute(
        "alter table marts.consent_state add column is_consented boolean; "
        "update marts.consent_state set is_consented = "
        "consent_status = 'granted' and not is_suppressed"
    )
    ensure_tables(con)
    con.execute(
        f"""
        insert into activation.contact_history
        select md5(customer_id || n), 'sync_' || (n % 4), 'sr', 'run', 'file_drop',
            case when n % 4 = 0 then 'action:win_back_push' else 'vip' end,
            'email', 'marketing', date '{AS_OF}' - cast(1 + n % 14 as integer), customer_id,
            email, 'ok', false, null, null, 'granted', null, now(), 1, now(), null
        from (select customer_id, email, cast(floor(random() * 1000) as integer) as n
              from marts.customer_360)
        """
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"), config={"threads": 2})
        started = time.perf_counter()
        synthesise(con, args.customers)
        print(f"profile: {args.customers:,} customers in {time.perf_counter() - started:.1f} s")
        out = nba.run(con, AS_OF)
        print(
            f"next_best_action: {out.rows:,} rows, {out.customers_with_action:,} customers "
            f"with a next-best action, {out.seconds:.2f} s"
        )
        for name, counts in out.per_action.items():
            print(f"  {name}: {counts}")
        con.close()


if __name__ == "__main__":
    main()
