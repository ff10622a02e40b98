{#- One row per web/app event of a resolved customer, with its local date in the customer's time
    zone. An event counts for segments if it happened by the end of as_of (UTC) and on or before
    as_of in the customer's zone.

    A view: each segment reads one event name of it, which the engine pushes down into the join,
    while a table would copy every event of every customer each night. -#}
{{ config(materialized='view') }}
with events as (
    select * from {{ ref('int_activity__web_events') }}
    where occurred_at <= {{ as_of_end() }}
),

final as (
    {{ localized_activity(
        'events', 'anonymous_id', 'web', 'anonymous_ids', 'occurred_at',
        ['event_id', 'event_name', 'properties', 'occurred_at']
    ) }}
)

select * from final
