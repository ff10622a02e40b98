{#- The max_per_customer limits of var('identity').identifiers as rows: identifier_type,
    max_per_customer, seen_since (null: count every one; else only those seen after it). -#}
{% macro identity_limits_sql() -%}
    {%- set limited = [] -%}
    {%- for name, settings in var('identity').get('identifiers', {}).items() if settings.get('max_per_customer') %}
        {%- do limited.append((name, settings['max_per_customer'] | int, settings.get('within_days'))) -%}
    {%- endfor %}
    {%- for name, most, days in limited %}
        select
            '{{ name }}' as identifier_type,
            {{ most }} as max_per_customer,
            {% if days -%}
                {{ as_of_end() }} - interval '{{ days | int }} days'
            {%- else -%}
                cast(null as timestamp)
            {%- endif %} as seen_since
        {{ 'union all' if not loop.last }}
    {%- else %}
        select
            cast(null as varchar) as identifier_type,
            cast(null as integer) as max_per_customer,
            cast(null as timestamp) as seen_since
        where false
    {%- endfor %}
{%- endmacro %}

{#- Components (labels) that pass a limit: label, identifier_type, identifiers, max_per_customer.
    `labelled` has columns label and node_key; node_types is int_identity__node_types. -#}
{% macro identity_limit_violations_sql(labelled, node_types) -%}
    with limits as (
        {{ identity_limits_sql() }}
    )

    select
        labelled.label,
        limits.identifier_type,
        count(*) as identifiers,
        min(limits.max_per_customer) as max_per_customer
    from {{ labelled }} as labelled
    inner join {{ node_types }} as node_types on labelled.node_key = node_types.node_key
    inner join limits on node_types.identifier_type = limits.identifier_type
    where limits.seen_since is null or node_types.seen_at > limits.seen_since
    group by labelled.label, limits.identifier_type
    having count(*) > min(limits.max_per_customer)
{%- endmacro %}
