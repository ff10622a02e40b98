{#- Post-hook of every model (dbt_project.yml): a table or incremental model logs its row count as
    `c360 row count: N` once built, which the dbt asset puts on the model's materialization as
    `dagster/row_count` while dbt runs (orchestration/dbt_events.py). A view is not counted: that
    would run its query. Renders no SQL of its own. -#}
{% macro log_row_count() -%}
    {%- if execute and model.config.materialized in ('table', 'incremental', 'reusable_table') -%}
        {%- set counted = run_query('select count(*) from ' ~ this) -%}
        {%- do log('c360 row count: ' ~ counted.columns[0].values()[0], info=True) -%}
    {%- endif -%}
{%- endmacro %}
