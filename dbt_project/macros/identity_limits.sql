{#- The permanent id types whose max_per_customer is lifted: those of the source entities
    var('identity').sources_with_duplicates declares to hold several records of one person (a
    CRM with duplicate contacts). Mapping as orchestration/identity/config.py PERSON_SOURCES. -#}
{% macro identity_lifted_limit_types() -%}
    {%- set permanent_ids = {
        'crm__contacts': 'crm_contact_id',
        'shop__customers': 'shop_customer_id',
        'loyalty__members': 'loyalty_member_id',
    } -%}
    {%- set lifted = [] -%}
    {%- for source in var('identity').get('sources_with_duplicates') or [] if source in permanent_ids %}
        {%- do lifted.append(permanent_ids[source]) -%}
    {%- endfor %}
    {{- return(lifted) -}}
{%- endmacro %}

{#- The max_per_customer limits of var('identity').identifiers as rows: identifier_type,
    max_per_customer, seen_since (null: count every one; else only those seen after it). A type
    of a source entity declared under sources_with_duplicates has none (its records may merge). -#}
{% macro identity_limits_sql() -%}
    {%- set limited = [] -%}
    {%- set lifted = identity_lifted_limit_types() -%}
    {%- for name, settings in var('identity').get('identifiers', {}).items() if settings.get('max_per_customer') and name not in lifted %}
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
            cast(null as {{ sql_type('varchar') }}) as identifier_type,
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
