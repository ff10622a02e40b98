{#- One row per send decision of a sync that reached a person or held them out (outcome ok or
    held_out in activation.contact_history; one per sync, as_of and customer), joined to what
    happened after it: email delivered / opened / clicked within var('campaign_engagement_days')
    days (7) after the send's as_of, and revenue orders within var('campaign_attribution_days') (7).
    The lift report compares the treated with the holdout of one sync and as_of.

    contact_history is written by the sync runners after the nightly dbt build, so a night sees the
    sends of earlier nights; a warehouse that never synced has no such table (no rows, no error).
    Engagement is matched by the address the row went to (contact_history carries no campaign id),
    so an open counts whichever campaign it came from; orders by the customer's shop accounts.
    `arm` is the A/B/n treatment arm of a sent row (null when held out or the sync has no arms;
    a contact_history written before arms existed has no such column: null throughout). -#}
{%- set engagement_days = var('campaign_engagement_days', 7) | int -%}
{%- set attribution_days = var('campaign_attribution_days', 7) | int -%}
{%- set history_source = source('activation', 'contact_history') -%}
{%- set history_relation = none -%}
{%- set has_arm = false -%}
{%- if execute -%}
    {%- set history_relation = adapter.get_relation(
        database=history_source.database, schema=history_source.schema, identifier=history_source.identifier
    ) -%}
    {%- if history_relation is not none -%}
        {%- set column_names = adapter.get_columns_in_relation(history_relation) | map(attribute='name') | map('lower') | list -%}
        {%- set has_arm = 'arm' in column_names -%}
    {%- endif -%}
{%- endif -%}
{%- set no_history -%}
    (select
        cast(null as {{ sql_type('varchar') }}) as contact_id,
        cast(null as {{ sql_type('varchar') }}) as sync_id,
        cast(null as {{ sql_type('varchar') }}) as segment_name,
        cast(null as date) as as_of,
        cast(null as {{ sql_type('varchar') }}) as customer_id,
        cast(null as {{ sql_type('varchar') }}) as channel,
        cast(null as {{ sql_type('varchar') }}) as contact_point,
        cast(null as {{ sql_type('varchar') }}) as outcome,
        cast(null as boolean) as is_holdout,
        cast(null as {{ sql_type('varchar') }}) as arm,
        cast(null as timestamp) as recorded_at
    where false)
{%- endset -%}
with contact_history as (
    -- columns qualified: the alias is used whether it names the table or the empty subquery
    -- (the lint must pass whatever the warehouse holds)
    select
        history.contact_id,
        history.sync_id,
        history.segment_name,
        history.as_of,
        history.customer_id,
        history.channel,
        history.contact_point,
        history.outcome,
        history.is_holdout,
        {% if has_arm or history_relation is none -%}
            history.arm
        {%- else -%}
            cast(null as {{ sql_type('varchar') }}) as arm
        {%- endif %},
        history.recorded_at
    from {{ history_source if history_relation is not none else no_history }} as history
    -- sends of earlier nights: the run's own sends are written after dbt builds, so counting
    -- them would make a rerun at the same as_of differ (their window has not opened yet anyway)
    where history.as_of < {{ as_of_date() }} and history.outcome in ('ok', 'held_out')
),

sends as (
    select
        contact_id,
        sync_id,
        segment_name,
        as_of,
        customer_id,
        channel,
        lower(trim(contact_point)) as contact_point,
        outcome,
        is_holdout,
        case when not is_holdout then arm end as arm,
        -- the window opens when the send's as_of day has ended (the night's run sends after it)
        {{ dbt.dateadd('day', 1, 'cast(as_of as timestamp)') }} as window_starts_at,
        row_number() over (
            partition by sync_id, as_of, customer_id
            order by recorded_at desc, contact_id desc
        ) as recency_rank
    from contact_history
),

-- the latest decision per sync, as_of and customer, with the ends of its two windows
windows as (
    select
        *,
        {{ dbt.dateadd('day', engagement_days, 'window_starts_at') }} as engagement_ends_at,
        {{ dbt.dateadd('day', attribution_days, 'window_starts_at') }} as attribution_ends_at
    from sends
    where recency_rank = 1
),

engagement as (
    select
        email_normalized,
        event_type,
        occurred_at
    from {{ ref('int_activity__email_engagement') }}
    where
        occurred_at <= {{ as_of_end() }}
        and event_type in ('delivered', 'opened', 'clicked')
),

engaged as (
    select
        windows.contact_id,
        max(case when engagement.event_type = 'delivered' then 1 else 0 end) = 1 as is_delivered,
        max(case when engagement.event_type = 'opened' then 1 else 0 end) = 1 as is_opened,
        max(case when engagement.event_type = 'clicked' then 1 else 0 end) = 1 as is_clicked
    from windows
    inner join engagement
        on
            windows.contact_point = engagement.email_normalized
            and windows.window_starts_at <= engagement.occurred_at
            and windows.engagement_ends_at > engagement.occurred_at
    where windows.channel = 'email'
    group by windows.contact_id
),

orders as (
    {{ resolved_revenue_orders(ref('customer_id_map')) }}
),

ordered as (
    select
        windows.contact_id,
        count(distinct orders.order_id) as order_count,
        sum(orders.total_amount) as order_revenue
    from windows
    inner join orders
        on
            windows.customer_id = orders.customer_id
            and windows.window_starts_at <= orders.ordered_at
            and windows.attribution_ends_at > orders.ordered_at
    group by windows.contact_id
),

final as (
    select
        windows.contact_id,
        windows.sync_id,
        windows.segment_name,
        windows.as_of,
        windows.customer_id,
        windows.is_holdout,
        windows.arm,
        windows.outcome,
        windows.channel,
        coalesce(engaged.is_delivered, false) as is_delivered,
        coalesce(engaged.is_opened, false) as is_opened,
        coalesce(engaged.is_clicked, false) as is_clicked,
        coalesce(ordered.order_count, 0) > 0 as has_ordered,
        cast(coalesce(ordered.order_count, 0) as bigint) as order_count,
        cast(coalesce(ordered.order_revenue, 0) as decimal(18, 2)) as order_revenue,
        windows.window_starts_at,
        windows.attribution_ends_at,
        windows.attribution_ends_at <= {{ as_of_end() }} as is_window_complete,
        {{ as_of_date() }} as measured_as_of
    from windows
    left join engaged on windows.contact_id = engaged.contact_id
    left join ordered on windows.contact_id = ordered.contact_id
)

select * from final
