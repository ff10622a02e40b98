{#- One row per web/app event of a resolved customer, with its local date in the customer's time
    zone. An event counts for segments if it happened by the end of as_of (UTC) and on or before
    as_of in the customer's zone. -#}
with events as (
    select * from {{ ref('int_activity__web_events') }}
    where occurred_at <= {{ as_of_end() }}
),

customers as (
    {{ resolved_customer_time_zones('web', 'anonymous_ids') }}
),

localized as (
    select
        customers.customer_id,
        events.event_id,
        events.event_name,
        events.properties,
        events.occurred_at,
        {{ local_date('events.occurred_at', 'customers.time_zone') }} as local_date
    from events
    inner join customers on events.anonymous_id = customers.source_record_id
),

final as (
    select * from localized
    where local_date <= {{ as_of_date() }}
)

select * from final
