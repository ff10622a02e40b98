{#- customer_360's trait columns: `relation` (one row per customer) left-joined to every trait
    model under models/marts/customer_360/traits/ on customer_id, in the order of the generated
    trait_models() (orchestration/contracts/customer_360.py). A customer without a row in a trait
    gets the column's `meta.default`, else null. -#}
{% macro with_traits(relation) %}
    {%- set traits = trait_models() %}
    select
        {{ relation }}.*
        {%- for model, columns in traits.items() %}
            {%- for column in columns %},
                {% if column.get('default') is not none -%}
                    coalesce({{ model }}.{{ column['name'] }}, {{ column['default'] }})
                {%- else -%}
                    {{ model }}.{{ column['name'] }}
                {%- endif %} as {{ column['name'] }}
            {%- endfor %}
        {%- endfor %}
    from {{ relation }}
    {%- for model in traits %}
        left join {{ ref(model) }} as {{ model }} on {{ relation }}.customer_id = {{ model }}.customer_id
    {%- endfor %}
{% endmacro %}
