{#- The run's logical date. Models never read the wall clock: everything is relative to this. -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of') -%}
    {%- if execute and value is none -%}
        {{ exceptions.raise_compiler_error("var 'as_of' is required (YYYY-MM-DD): dbt build --vars '{as_of: 2026-11-21}'") }}
    {%- endif -%}
    cast('{{ value }}' as date)
{%- endmacro %}

{#- Last instant of the as_of day (UTC): data at or before this is "known" to the run. -#}
{% macro as_of_end() -%}
    cast('{{ var("as_of") }} 23:59:59' as timestamp)
{%- endmacro %}
