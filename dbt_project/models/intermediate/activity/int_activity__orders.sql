{#- One row per shop order: its latest version, the rows of stg_shop__orders (same columns, same
    renames) plus the load stamp of that version. Incremental (macros/incremental_mirror.sql):
    only orders with a version published since the last build are re-ranked. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='order_id',
    on_schema_change='fail',
    post_hook="{{ mirror_drop_removed(source('shop', 'orders'), 'order_id') }}",
) }}

-- after the staging view: its build waits for the night's erasure step, so this one does too
-- depends_on: {{ ref('stg_shop__orders') }}
with source as (
    {{ latest_version(mirror_source(source('shop', 'orders'), 'order_id'), 'order_id', 'updated_at') }}
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
        updated_at,
        _loaded_at
    from source
)

select * from renamed
