{#- One row per shop order: its latest version, the rows of stg_shop__orders (same columns,
    macros/staging_columns.sql) plus the load stamp of that version. Incremental
    (macros/activity_mirror.sql): only orders with a version published since the last build are
    re-ranked. -#}

-- after the staging view: its build waits for the night's erasure step, so this one does too
-- depends_on: {{ ref('stg_shop__orders') }}
{{ activity_mirror('shop', 'orders', 'order_id', 'updated_at', stg_shop__orders_columns()) }}
