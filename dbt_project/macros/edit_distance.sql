{#- Levenshtein distance between two texts, the same number on every engine. Postgres needs the
    fuzzystrmatch extension (a trusted contrib extension; created by ensure_extensions). -#}
{% macro edit_distance(a, b) -%}
    levenshtein({{ a }}, {{ b }})
{%- endmacro %}

{#- Extensions the project's SQL relies on, created at the start of every run. -#}
{% macro ensure_extensions() -%}
    {{ return(adapter.dispatch('ensure_extensions', 'c360')()) }}
{%- endmacro %}

{% macro default__ensure_extensions() -%}
    select 1
{%- endmacro %}

{% macro postgres__ensure_extensions() -%}
    create extension if not exists fuzzystrmatch
{%- endmacro %}
