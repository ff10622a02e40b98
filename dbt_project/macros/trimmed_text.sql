{#- Free-text columns for a select list: each trimmed, blank → null, under its own name. -#}
{% macro trimmed_text(columns) -%}
    {%- for column in columns -%}
        nullif(trim({{ column }}), '') as {{ column }}{{ ",\n    " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
