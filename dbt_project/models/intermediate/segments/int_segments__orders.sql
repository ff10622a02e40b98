{#- One row per revenue order (paid/shipped/delivered) of a resolved customer, with its local date
    in the customer's time zone; by the end of as_of (UTC) and on or before as_of locally. -#}
with orders as (
    select * from {{ ref('int_activity__orders') }}
    where is_revenue and ordered_at <= {{ as_of_end() }}
),

final as (
    {{ localized_activity(
        'orders', 'shop_customer_id', 'shop', 'customers', 'ordered_at',
        ['order_id', 'ordered_at', 'total_amount']
    ) }}
)

select * from final
