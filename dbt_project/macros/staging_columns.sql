{#- The select lists of the staging views that have an incremental mirror
    (models/intermediate/activity): the view and its mirror both take their columns from here, so
    a column is named, renamed or typed in one place. Each reads the raw table's columns. -#}

{#- stg_web__events and int_activity__web_events: one row per web/app event. -#}
{% macro stg_web__events_columns() -%}
    event_id,
    anonymous_id,
    nullif(trim(user_id), '') as shop_customer_id,
    event_name,
    platform,
    properties,
    occurred_at,
    received_at
{%- endmacro %}

{#- stg_shop__orders and int_activity__orders: one row per shop order. -#}
{% macro stg_shop__orders_columns() -%}
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
{%- endmacro %}

{#- stg_email__engagement and int_activity__email_engagement: one row per engagement event. -#}
{% macro stg_email__engagement_columns() -%}
    engagement_event_id,
    {{ normalize_email('email') }} as email_normalized,
    campaign_id,
    event_type,
    bounce_type,
    occurred_at
{%- endmacro %}
