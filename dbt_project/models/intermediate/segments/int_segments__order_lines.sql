{#- One row per line of an order in int_segments__orders (product and category conditions).
    A view: only segments with such a condition read it, each for its products or categories. -#}
{{ config(materialized='view') }}
with orders as (
    select order_id from {{ ref('int_segments__orders') }}
),

lines as (
    select * from {{ ref('stg_shop__order_lines') }}
),

final as (
    select
        lines.order_id,
        lines.order_line_id,
        lines.product_id,
        lines.product_category,
        lines.line_amount
    from lines
    inner join orders on lines.order_id = orders.order_id
)

select * from final
