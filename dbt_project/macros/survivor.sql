{#- Golden-record survivorship for one attribute: source priority, then recency, then non-null.
    Returns one row per customer_id with the surviving value. -#}
{% macro survivor(relation, attribute) -%}
    select
        customer_id,
        {{ attribute }}
    from (
        select
            customer_id,
            {{ attribute }},
            row_number() over (
                partition by customer_id
                order by source_priority asc, updated_at desc, record_key asc
            ) as survivor_rank
        from {{ relation }}
        where {{ attribute }} is not null
    ) as candidates
    where survivor_rank = 1
{%- endmacro %}
