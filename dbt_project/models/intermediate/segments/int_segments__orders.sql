{#- One row per revenue order (paid/shipped/delivered) of a resolved customer, with its local date
    in the customer's time zone; by the end of as_of (UTC) and on or before as_of locally. -#}
with orders as (
    select * from {{ ref('int_activity__orders') }}
    where is_revenue and ordered_at <= {{ as_of_end() }}
),

customers as (
    {{ resolved_customer_time_zones('shop', 'customers') }}
),

localized as (
    select
        customers.customer_id,
        orders.order_id,
        orders.ordered_at,
        orders.total_amount,
        {{ local_date('orders.ordered_at', 'customers.time_zone') }} as local_date
    from orders
    inner join customers on orders.shop_customer_id = customers.source_record_id
),

final as (
    select * from localized
    where local_date <= {{ as_of_date() }}
)

select * from final
