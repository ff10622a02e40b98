{#- Retention by monthly cohort: customers grouped by the month of their first revenue order (paid,
    shipped, delivered) up to as_of, and for each later month the share of them who ordered again
    in it, with the revenue. Month 0 is the cohort's own month (retention 1). The as_of month is
    partial (is_month_complete false). Orders: resolved_revenue_orders (macros/revenue_orders.sql),
    as customer_360 counts them. -#}
with orders as (
    {{ resolved_revenue_orders(ref('customer_id_map')) }}
),

order_months as (
    select
        customer_id,
        total_amount,
        {{ dbt.date_trunc('month', 'ordered_at') }} as activity_month
    from orders
),

monthly as (
    select
        customer_id,
        activity_month,
        sum(total_amount) as revenue
    from order_months
    group by customer_id, activity_month
),

cohorts as (
    select
        customer_id,
        min(activity_month) as cohort_month
    from monthly
    group by customer_id
),

cohort_sizes as (
    select
        cohort_month,
        count(*) as cohort_customers
    from cohorts
    group by cohort_month
),

activity as (
    select
        cohorts.cohort_month,
        monthly.activity_month,
        count(*) as active_customers,
        sum(monthly.revenue) as revenue
    from monthly
    inner join cohorts on monthly.customer_id = cohorts.customer_id
    group by cohorts.cohort_month, monthly.activity_month
),

final as (
    select
        cast(activity.cohort_month as date) as cohort_month,
        cast(
            {{ dbt.datediff('activity.cohort_month', 'activity.activity_month', 'month') }} as integer  -- noqa: LT05
        ) as months_since_first_order,
        cast(activity.activity_month as date) as activity_month,
        cohort_sizes.cohort_customers,
        activity.active_customers,
        cast(activity.active_customers as {{ sql_type('double precision') }})
        / cohort_sizes.cohort_customers as retention_rate,
        cast(activity.revenue as decimal(18, 2)) as revenue,
        cast(activity.revenue as {{ sql_type('double precision') }})
        / cohort_sizes.cohort_customers as revenue_per_cohort_customer,
        {{ dbt.dateadd('month', 1, 'activity.activity_month') }}
        <= {{ dbt.dateadd('day', 1, as_of_date()) }} as is_month_complete,
        {{ as_of_date() }} as as_of
    from activity
    inner join cohort_sizes on activity.cohort_month = cohort_sizes.cohort_month
)

select * from final
