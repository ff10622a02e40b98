{#- Session settings a model is built with, per adapter (a pre-hook of every model).

    Postgres: no nested-loop joins. Its planner estimates the rows of a filtered view or a
    ranked CTE from default selectivities (a CASE over a lookup `is not null`, a
    `row_number() = 1`), finds a few dozen where there are thousands, and nests loops over
    whole tables: marts.consent_state took minutes on 5,000 customers where a hash join takes
    milliseconds. The models are batch transformations of whole tables, which hash and merge
    joins serve; index lookups in scalar subqueries are not joins and are unaffected. -#}
{% macro planner_settings() -%}
    {{ return(adapter.dispatch('planner_settings', 'c360')()) }}
{%- endmacro %}

{% macro default__planner_settings() -%}
{%- endmacro %}

{% macro postgres__planner_settings() -%}
    set enable_nestloop = off
{%- endmacro %}
