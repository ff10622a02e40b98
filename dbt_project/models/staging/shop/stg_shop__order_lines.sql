with source as (
    {{ latest_version(source('shop', 'order_lines'), 'order_line_id', 'updated_at') }}
),

renamed as (
    select
        order_line_id,
        order_id,
        product_id,
        product_name,
        category as product_category,
        unit_price,
        quantity,
        unit_price * quantity as line_amount,
        updated_at
    from source
)

select * from renamed
