{#- Which as_of each model was last built for, and whether that build finished: one row per model
    per dbt invocation in audit.dbt_model_builds. Written 'started' before anything is built
    (on-run-start) and given its final status after (on-run-end), so a build killed halfway leaves
    'started' rows: activation reads them and refuses to send from marts of mixed days. -#}
{% macro record_build_start() -%}
{%- set sql -%}
    create schema if not exists audit;
    create table if not exists audit.dbt_model_builds (
        model_name varchar not null,
        as_of date,
        run_id varchar,
        invocation_id varchar not null,
        status varchar not null,
        started_at timestamp not null
    );
    {%- if execute %}
        {%- set models = [] %}
        {%- for unique_id in selected_resources if unique_id.startswith('model.') %}
            {%- do models.append(unique_id.split('.')[-1]) %}
        {%- endfor %}
        {%- if models %}
    insert into audit.dbt_model_builds
        (model_name, as_of, run_id, invocation_id, status, started_at)
    values
            {%- for model in models %}
        ('{{ model }}', {{ _build_log_as_of() }}, {{ _build_log_run_id() }},
         '{{ invocation_id }}', 'started', {{ _build_log_started_at() }}){{ "," if not loop.last }}
            {%- endfor %};
        {%- endif %}
    {%- endif %}
{%- endset -%}
    {{ return(run_statements(sql)) }}
{%- endmacro %}

{% macro record_build_end(results) -%}
{%- set sql -%}
    {%- set models = [] %}
    {%- for result in results if result.node.resource_type == 'model' %}
        {%- do models.append(result) %}
    {%- endfor %}
    {%- if models %}
    update audit.dbt_model_builds
    set status = case model_name
        {%- for result in models %}
        when '{{ result.node.name }}' then '{{ result.status }}'
        {%- endfor %}
        else status end
    where invocation_id = '{{ invocation_id }}' and model_name in (
        {%- for result in models %}'{{ result.node.name }}'{{ ', ' if not loop.last }}{% endfor -%}
    )
    {%- else %}
    select 1
    {%- endif %}
{%- endset -%}
    {{ return(run_statements(sql)) }}
{%- endmacro %}

{#- When this dbt invocation started (run metadata that orders the builds; models still never
    read the clock). -#}
{% macro _build_log_started_at() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{% macro _build_log_as_of() -%}
    {%- set value = as_of_value() | string -%}
    {%- if not value -%} null {%- else -%} cast('{{ modules.datetime.date.fromisoformat(value) }}' as date) {%- endif -%}
{%- endmacro %}

{% macro _build_log_run_id() -%}
    {%- set value = run_id_value() | string -%}
    {%- if not modules.re.fullmatch('[A-Za-z0-9_-]+', value) -%} null {%- else -%} '{{ value }}' {%- endif -%}
{%- endmacro %}
