with source as (
    {{ latest_version(source('shop', 'orders'), 'order_id', 'updated_at') }}
),

renamed as (
    select
        order_id,
        shop_customer_id,
        ordered_at,
        status as order_status,
        status in ('paid', 'shipped', 'delivered') as is_revenue,
        currency,
        total_amount,
        coalesce(discount_amount, 0) as discount_amount,
        shipping_country_code,
        updated_at
    from source
)

select * from renamed
