{#- The campaign funnel per sync, send night and arm (treated = sent, or the A/B/n arm's name for a
    sync with arms; held_out = the control), from
    marts.campaign_outcomes: members, delivered / opened / clicked (email), converted (a revenue
    order in the attribution window) and revenue. Lift with its confidence interval and the
    sample-ratio check are in marts.campaign_lift. -#}
with outcomes as (
    select
        *,
        case when is_holdout then 'held_out' else coalesce(arm, 'treated') end as arm_group
    from {{ ref('campaign_outcomes') }}
),

final as (
    select
        sync_id,
        segment_name,
        as_of as send_as_of,
        arm_group as arm,
        max(channel) as channel,
        count(*) as members,
        sum(case when is_delivered then 1 else 0 end) as delivered,
        sum(case when is_opened then 1 else 0 end) as opened,
        sum(case when is_clicked then 1 else 0 end) as clicked,
        sum(case when has_ordered then 1 else 0 end) as converted,
        cast(sum(case when has_ordered then 1 else 0 end) as {{ sql_type('double precision') }})
        / count(*) as conversion_rate,
        sum(order_count) as orders,
        cast(sum(order_revenue) as decimal(18, 2)) as revenue,
        cast(sum(order_revenue) as {{ sql_type('double precision') }}) / count(*) as revenue_per_member,
        bool_and(is_window_complete) as is_window_complete,
        max(measured_as_of) as measured_as_of
    from outcomes
    group by sync_id, segment_name, as_of, arm_group
)

select * from final
