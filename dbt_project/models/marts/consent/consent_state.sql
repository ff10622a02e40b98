{#- The single source of consent truth: one row per contact point, channel and purpose at as_of.
    Segments and activation read this model; nobody re-derives consent.

    Consent events come from the preference centre and, closing the loop in the same night, from
    the email platform's engagement: an unsubscribe or a spam complaint revokes email marketing, a
    hard bounce revokes every email purpose of that address (it is unreachable). The latest event at or before as_of
    wins per contact point, channel and purpose (a revocation wins a tie); a later re-grant wins
    over an earlier unsubscribe. capture_source says which kind of event decided the row.

    An erasure covers a contact point whether or not it has a consent record: one that has none gets
    a revoked row (capture_source erasure_request) so that customer_360 sees the erasure. -#}
with consent_events as (
    select
        consent_event_id,
        contact_point,
        contact_point_type,
        channel,
        purpose,
        consent_status,
        captured_at,
        expires_at,
        capture_source
    from {{ ref('stg_consent__events') }}
    where captured_at <= {{ as_of_end() }} and contact_point is not null
),

engagement_revocations as (
    select
        engagement_event_id,
        email_normalized as contact_point,
        occurred_at,
        case
            when event_type = 'unsubscribed' then 'email_unsubscribe'
            when event_type = 'complained' then 'email_spam_complaint'
            else 'email_hard_bounce'
        end as capture_source
    from {{ ref('int_activity__email_engagement') }}
    where
        occurred_at <= {{ as_of_end() }}
        and email_normalized is not null
        and (
            event_type in ('unsubscribed', 'complained')
            or (event_type = 'bounced' and bounce_type = 'hard')
        )
),

email_purposes as (
    -- the purposes a revocation from the email platform can reach for an address
    select distinct
        contact_point,
        purpose
    from consent_events
    where channel = 'email'
    union
    select distinct
        contact_point,
        'marketing' as purpose
    from engagement_revocations
),

engagement_events as (
    -- an unsubscribe or a spam complaint withdraws marketing; a hard bounce makes the address
    -- unreachable for every purpose
    select
        engagement_revocations.engagement_event_id as consent_event_id,
        engagement_revocations.contact_point,
        'email' as contact_point_type,
        'email' as channel,
        email_purposes.purpose,
        'revoked' as consent_status,
        engagement_revocations.occurred_at as captured_at,
        cast(null as timestamp) as expires_at,
        engagement_revocations.capture_source
    from engagement_revocations
    inner join email_purposes
        on engagement_revocations.contact_point = email_purposes.contact_point
    where
        email_purposes.purpose = 'marketing'
        or engagement_revocations.capture_source = 'email_hard_bounce'
),

suppressions as (
    select * from {{ ref('stg_consent__suppressions') }}
    where suppressed_at <= {{ as_of_end() }} and contact_point is not null
),

erasure_requests as (
    select * from {{ ref('stg_consent__erasure_requests') }}
    where requested_at <= {{ as_of_end() }} and contact_point is not null
),

erasures as (
    select distinct contact_point from erasure_requests
),

recorded_events as (
    select * from consent_events
    union all
    select * from engagement_events
),

recorded_contact_points as (
    select distinct contact_point from recorded_events
),

unrecorded_erasures as (
    -- an erased contact point without any consent record still needs a row to carry is_erased
    select
        erasure_requests.erasure_request_id as consent_event_id,
        erasure_requests.contact_point,
        erasure_requests.contact_point_type,
        case when erasure_requests.contact_point_type = 'email' then 'email' else 'sms' end
            as channel,
        'marketing' as purpose,
        'revoked' as consent_status,
        erasure_requests.requested_at as captured_at,
        cast(null as timestamp) as expires_at,
        'erasure_request' as capture_source
    from erasure_requests
    left join recorded_contact_points
        on erasure_requests.contact_point = recorded_contact_points.contact_point
    where recorded_contact_points.contact_point is null
),

events as (
    select * from recorded_events
    union all
    select * from unrecorded_erasures
),

ranked as (
    select
        *,
        row_number() over (
            partition by contact_point, channel, purpose
            order by
                captured_at desc,
                case when consent_status = 'revoked' then 0 else 1 end,
                consent_event_id desc
        ) as recency_rank
    from events
),

latest as (
    select * from ranked
    where recency_rank = 1
),

contact_point_channels as (
    select distinct
        contact_point,
        channel
    from latest
),

suppressed as (
    select
        contact_points.contact_point,
        contact_points.channel,
        min(suppressions.suppression_reason) as suppression_reason
    from contact_point_channels as contact_points
    inner join suppressions
        on
            contact_points.contact_point = suppressions.contact_point
            and (contact_points.channel = suppressions.channel or suppressions.channel = 'all')
    group by contact_points.contact_point, contact_points.channel
),

final as (
    select
        latest.contact_point,
        latest.contact_point_type,
        latest.channel,
        latest.purpose,
        latest.consent_status,
        latest.captured_at as consent_captured_at,
        latest.expires_at as consent_expires_at,
        latest.capture_source,
        coalesce(latest.expires_at <= {{ as_of_end() }}, false) as is_expired,
        suppressed.contact_point is not null as is_suppressed,
        suppressed.suppression_reason,
        erasures.contact_point is not null as is_erased,
        (
            latest.consent_status = 'granted'
            and coalesce(latest.expires_at > {{ as_of_end() }}, true)
            and suppressed.contact_point is null
            and erasures.contact_point is null
        ) as is_consented,
        {{ as_of_date() }} as as_of
    from latest
    left join suppressed
        on latest.contact_point = suppressed.contact_point and latest.channel = suppressed.channel
    left join erasures on latest.contact_point = erasures.contact_point
)

select * from final
