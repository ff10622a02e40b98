{#- One row per web/app event of a resolved customer, with its local date in the customer's time
    zone. An event counts for segments if it happened by the end of as_of (UTC) and on or before
    as_of in the customer's zone. -#}
with events as (
    select * from {{ ref('int_activity__web_events') }}
    where occurred_at <= {{ as_of_end() }}
),

id_map as (
    select
        source_record_id as anonymous_id,
        customer_id
    from {{ ref('customer_id_map') }}
    where source = 'web' and entity = 'anonymous_ids'
),

customers as (
    select
        customer_id,
        time_zone
    from {{ ref('customer_360') }}
),

localized as (
    select
        id_map.customer_id,
        events.event_id,
        events.event_name,
        events.properties,
        events.occurred_at,
        {{ local_date('events.occurred_at', 'customers.time_zone') }} as local_date
    from events
    inner join id_map on events.anonymous_id = id_map.anonymous_id
    inner join customers on id_map.customer_id = customers.customer_id
),

final as (
    select * from localized
    where local_date <= {{ as_of_date() }}
)

select * from final
