{#- The run's logical date (YYYY-MM-DD): `--vars '{as_of: ...}'` when given, else the env var
    C360_AS_OF (how the nightly passes it). The env var is read only while executing, never while
    parsing: dbt then does not record it against the files, so a new date (or run id) does not
    make dbt re-parse the project, where a new `--vars` value re-parses all of it. -#}
{% macro as_of_value() -%}
    {%- set value = var('as_of') -%}
    {%- if value is none and execute -%}
        {%- set value = env_var('C360_AS_OF', '') or none -%}
    {%- endif -%}
    {{- '' if value is none else value -}}
{%- endmacro %}

{#- The run's logical date. Models never read the wall clock: everything is relative to this. -#}
{% macro as_of_date() -%}
    {%- set value = as_of_value() -%}
    {%- if execute and not value -%}
        {{ exceptions.raise_compiler_error("the run's as_of is required (YYYY-MM-DD): dbt build --vars '{as_of: 2026-11-21}' (or env C360_AS_OF)") }}
    {%- endif -%}
    cast('{{ value }}' as date)
{%- endmacro %}

{#- Last instant of the as_of day (UTC): data at or before this is "known" to the run. -#}
{% macro as_of_end() -%}
    cast('{{ as_of_value() }} 23:59:59' as timestamp)
{%- endmacro %}

{#- The Dagster run that invoked dbt: `--vars '{run_id: ...}'` when given, else the env var
    C360_RUN_ID (read only while executing, like as_of); empty when neither is set. -#}
{% macro run_id_value() -%}
    {%- set value = var('run_id', none) -%}
    {%- if value is none and execute -%}
        {%- set value = env_var('C360_RUN_ID', '') or none -%}
    {%- endif -%}
    {{- '' if value is none else value -}}
{%- endmacro %}
