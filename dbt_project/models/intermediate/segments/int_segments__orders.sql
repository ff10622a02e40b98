{#- One row per revenue order (paid/shipped/delivered) of a resolved customer, with its local date
    in the customer's time zone; by the end of as_of (UTC) and on or before as_of locally. -#}
with orders as (
    select * from {{ ref('int_activity__orders') }}
    where is_revenue and ordered_at <= {{ as_of_end() }}
),

id_map as (
    select
        source_record_id as shop_customer_id,
        customer_id
    from {{ ref('customer_id_map') }}
    where source = 'shop' and entity = 'customers'
),

customers as (
    select
        customer_id,
        time_zone
    from {{ ref('customer_360') }}
),

localized as (
    select
        id_map.customer_id,
        orders.order_id,
        orders.ordered_at,
        orders.total_amount,
        {{ local_date('orders.ordered_at', 'customers.time_zone') }} as local_date
    from orders
    inner join id_map on orders.shop_customer_id = id_map.shop_customer_id
    inner join customers on id_map.customer_id = customers.customer_id
),

final as (
    select * from localized
    where local_date <= {{ as_of_date() }}
)

select * from final
