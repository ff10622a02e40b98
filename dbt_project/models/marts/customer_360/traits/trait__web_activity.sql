{#- Web/app activity trait: one row per customer with web or app events in the 30 days to
    as_of — sessions started and cart adds over all their anonymous ids. -#}
with web_ids as (
    select
        customer_id,
        source_record_id as anonymous_id
    from {{ ref('customer_id_map') }}
    where source = 'web'
),

recent_events as (
    select
        anonymous_id,
        event_name
    from {{ ref('int_activity__web_events') }}
    where
        occurred_at <= {{ as_of_end() }}
        and occurred_at > {{ dbt.dateadd('day', -30, as_of_end()) }}
)

select
    web_ids.customer_id,
    cast(sum(case when recent_events.event_name = 'session_start' then 1 else 0 end) as bigint)
        as web_sessions_30d,
    cast(sum(case when recent_events.event_name = 'cart_add' then 1 else 0 end) as bigint)
        as cart_adds_30d
from recent_events
inner join web_ids on recent_events.anonymous_id = web_ids.anonymous_id
group by web_ids.customer_id
