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
        nullif(trim(shipping_address_line1), '') as shipping_address_line1,
        nullif(trim(shipping_address_line2), '') as shipping_address_line2,
        nullif(trim(shipping_city), '') as shipping_city,
        nullif(trim(shipping_postal_code), '') as shipping_postal_code,
        updated_at
    from source
)

select * from renamed
