{#- Golden-record survivorship for one attribute group: among records whose first column is not
    null, the first by source priority (listed sources in order, unlisted after), then the most
    recently updated, then the smallest record key. All columns come from that one record.
    Returns one row per customer_id. -#}
{% macro survivor(relation, columns, source_priority) -%}
    select
        customer_id,
        {{ columns | join(', ') }}
    from (
        select
            customer_id,
            {{ columns | join(', ') }},
            row_number() over (
                partition by customer_id
                order by
                    case source
                        {%- for source in source_priority %}
                            when '{{ source }}' then {{ loop.index }}
                        {%- endfor %}
                        else {{ source_priority | length + 1 }}
                    end asc,
                    updated_at desc,
                    record_key asc
            ) as survivor_rank
        from {{ relation }}
        where {{ columns[0] }} is not null
    ) as candidates
    where survivor_rank = 1
{%- endmacro %}
