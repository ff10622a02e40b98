{#- A relation with the given columns and no rows, as a parenthesised select to put after `from`:
    the stand-in for a table a run may not have written yet (one a Python asset creates), so the
    model reads the same typed columns either way. `columns`: (name, type) pairs, in order. -#}
{% macro empty_relation(columns) -%}
    (select
        {%- for name, type in columns %}
        cast(null as {{ sql_type(type) }}) as {{ name }}{{ ',' if not loop.last }}
        {%- endfor %}
    where false)
{%- endmacro %}
