{#- One row per customer: the golden record (one surviving record per attribute group,
    var('survivorship'); macros/survivor.sql) and the sources holding the customer's records.
    customer_360's part that no as_of moves: kept across nights while the records and their
    customer ids are unchanged (reusable_table; it reads customer_id_map's keys and ids only). -#}
{%- set survivorship = var('survivorship') -%}
{%- set default_priority = survivorship.get('default_source_priority', []) -%}
{{ config(
    materialized='reusable_table',
    meta={'reads_columns': {'customer_id_map': ['record_key', 'customer_id']}},
) }}
with id_map as (
    select
        record_key,
        customer_id
    from {{ ref('customer_id_map') }}
),

records as (
    select
        id_map.customer_id,
        int_records.*
    from {{ ref('int_identity__records') }} as int_records
    inner join id_map on int_records.record_key = id_map.record_key
),

{% for group, settings in survivorship['attributes'].items() %}
    golden_{{ group }} as (
        {{ survivor('records', settings['columns'], settings.get('source_priority', default_priority)) }}
    ),

{% endfor %}
customers as (
    select
        customer_id,
        count(*) as source_record_count,
        max(case when source = 'crm' then 1 else 0 end) = 1 as is_in_crm,
        max(case when source = 'shop' then 1 else 0 end) = 1 as is_in_shop,
        max(case when source = 'loyalty' then 1 else 0 end) = 1 as is_in_loyalty,
        max(case when source = 'web' then 1 else 0 end) = 1 as is_in_web
    from records
    group by customer_id
),

final as (
    select
        customers.customer_id,
        {% for group, settings in survivorship['attributes'].items() %}
            {%- for column in settings['columns'] %}
                golden_{{ group }}.{{ column }},
            {%- endfor %}
        {% endfor %}
        customers.source_record_count,
        customers.is_in_crm,
        customers.is_in_shop,
        customers.is_in_loyalty,
        customers.is_in_web
    from customers
    {% for group in survivorship['attributes'] %}
        left join golden_{{ group }} on customers.customer_id = golden_{{ group }}.customer_id
    {% endfor %}
)

select * from final
