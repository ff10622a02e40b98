{#- A staging model's body: the newest version of each key of append-only `relation`
    (latest_version), its columns selected and renamed by `columns` (a select list), then
    `extra_columns` as they are (the incremental mirrors keep `_loaded_at`). One row per `key`. -#}
{% macro staged(relation, key, order_by, columns, extra_columns=[]) -%}
with source as (
    {{ latest_version(relation, key, order_by) }}
),

renamed as (
    select
        {{ columns | trim | indent(4) }}
        {%- for column in extra_columns %},
        {{ column }}
        {%- endfor %}
    from source
)

select * from renamed
{%- endmacro %}
