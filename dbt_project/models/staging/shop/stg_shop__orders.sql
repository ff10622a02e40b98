{#- One row per shop order: its latest version in raw. Columns in macros/staging_columns.sql,
    shared with the incremental mirror int_activity__orders. -#}
{{ staged(source('shop', 'orders'), 'order_id', 'updated_at', stg_shop__orders_columns()) }}
