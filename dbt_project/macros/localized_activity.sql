{#- The rows of `activity` (a CTE of one kind of activity) that belong to a resolved customer: one
    row per activity row whose `record_id` is a `source`/`entity` record in customer_id_map, with
    the customer_id, the `columns` of the row and the local date of its `occurred_at` in the
    customer's time zone, kept when that date is on or before as_of. Shared by the int_segments
    models, so events and orders resolve to customers and local dates alike. -#}
{% macro localized_activity(activity, record_id, source, entity, occurred_at, columns) -%}
    select *
    from (
        select
            customers.customer_id,
            {%- for column in columns %}
            {{ activity }}.{{ column }},
            {%- endfor %}
            {{ local_date(activity ~ '.' ~ occurred_at, 'customers.time_zone') }} as local_date
        from {{ activity }}
        inner join (
            {{ resolved_customer_time_zones(source, entity) | indent(8) }}
        ) as customers
            on {{ activity }}.{{ record_id }} = customers.source_record_id
    ) as localized
    where localized.local_date <= {{ as_of_date() }}
{%- endmacro %}
