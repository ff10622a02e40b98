with source as (
    {{ latest_version(source('email', 'engagement'), 'engagement_event_id', 'occurred_at') }}
),

renamed as (
    select
        engagement_event_id,
        {{ normalize_email('email') }} as email_normalized,
        campaign_id,
        event_type,
        bounce_type,
        occurred_at
    from source
)

select * from renamed
