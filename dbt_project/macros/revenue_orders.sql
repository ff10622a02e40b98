{#- A select of the revenue orders (paid, shipped, delivered) placed by the end of as_of (UTC):
    one row per order, every column of the incremental mirror int_activity__orders, plus the
    customer_id its shop account resolved to. `id_map` is a relation or CTE with the columns of
    marts.customer_id_map (source, entity, source_record_id, customer_id). Shared by the models
    that count orders per unified customer, so they count the same orders. -#}
{% macro resolved_revenue_orders(id_map) -%}
    select
        id_map.customer_id,
        orders.*
    from {{ ref('int_activity__orders') }} as orders
    inner join {{ id_map }} as id_map
        on
            id_map.source = 'shop' and id_map.entity = 'customers'
            and orders.shop_customer_id = id_map.source_record_id
    where orders.ordered_at <= {{ as_of_end() }} and orders.is_revenue
{%- endmacro %}
