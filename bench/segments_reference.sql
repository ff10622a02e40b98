-- Hand-written reference SQL for every shipped segment (dbt_project/segments/*.yml), written
-- independently of the compiler, to time the compiled SQL against and to check it selects the
-- same customers (bench/segments.py). One statement per segment, each introduced by a
-- `-- segment: <name>` line; relations are the bench's tables (schema-less names). Every segment
-- leaves out erased customers (the global exclusion in _global.yml); days are local dates.

-- segment: cart_abandoners
select c.customer_id
from customer_360 as c
where
    not coalesce(c.is_erased, false)
    and c.customer_id in (
        select customer_id from int_segments__events
        where event_name = 'cart_add' and local_date >= date '2026-11-20'
    )
    and c.customer_id not in (
        select customer_id from int_segments__orders where local_date >= date '2026-11-20'
    );

-- segment: churn_risk
with per_customer as (
    select
        customer_id,
        count(*) filter (where local_date >= date '2025-11-21') as orders_365,
        count(*) filter (where local_date >= date '2026-09-23') as orders_59,
        count(*) filter (
            where local_date between date '2026-07-24' and date '2026-09-22'
        ) as orders_60_120
    from int_segments__orders
    group by customer_id
)
select c.customer_id
from customer_360 as c
inner join per_customer as p on c.customer_id = p.customer_id
where
    not coalesce(c.is_erased, false)
    and p.orders_365 >= 2 and p.orders_59 = 0 and p.orders_60_120 >= 1;

-- segment: highly_email_engaged
select c.customer_id
from customer_360 as c
where
    not coalesce(c.is_erased, false)
    and (c.email_clicks_90d >= 2 or c.email_opens_30d >= 3)
    and not (
        coalesce(c.rfm_monetary_score >= 5, false)
        and coalesce(c.rfm_frequency_score >= 4, false)
        and coalesce(c.rfm_recency_score >= 3, false)
    );

-- segment: lapsed_high_value
select c.customer_id
from customer_360 as c
where
    not coalesce(c.is_erased, false)
    and c.lifetime_revenue >= 500
    and c.days_since_last_order between 90 and 365;

-- segment: new_visitors
select c.customer_id
from customer_360 as c
inner join (
    select customer_id, min(local_date) as first_day
    from int_segments__events
    where event_name = 'session_start'
    group by customer_id
) as f on c.customer_id = f.customer_id
where not coalesce(c.is_erased, false) and f.first_day >= date '2026-11-15';

-- segment: one_time_buyers
select c.customer_id
from customer_360 as c
inner join (
    select customer_id from int_segments__orders group by customer_id having count(*) = 1
) as o on c.customer_id = o.customer_id
where not coalesce(c.is_erased, false);

-- segment: product_qualified_leads
select c.customer_id
from customer_360 as c
inner join (
    select customer_id
    from int_segments__events
    where event_name = 'feature_used' and local_date >= date '2026-11-08'
    group by customer_id
    having count(*) >= 3
) as e on c.customer_id = e.customer_id
where
    not coalesce(c.is_erased, false)
    and c.customer_id not in (select customer_id from int_segments__orders);

-- segment: sms_reachable_loyalty
select c.customer_id
from customer_360 as c
where
    not coalesce(c.is_erased, false)
    and c.is_in_loyalty
    and c.is_sms_reachable
    and c.is_sms_marketing_consented;

-- segment: vip
select c.customer_id
from customer_360 as c
where
    not coalesce(c.is_erased, false)
    and c.rfm_monetary_score >= 5
    and c.rfm_frequency_score >= 4
    and c.rfm_recency_score >= 3;

-- segment: birthday_this_month
select c.customer_id
from customer_360 as c
where not coalesce(c.is_erased, false) and c.is_birthday_month;
