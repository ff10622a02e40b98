{#- The single source of consent truth: one row per contact point, channel and purpose at as_of.
    Segments and activation read this model; nobody re-derives consent. -#}
with events as (
    select * from {{ ref('stg_consent__events') }}
    where captured_at <= {{ as_of_end() }} and contact_point is not null
),

suppressions as (
    select * from {{ ref('stg_consent__suppressions') }}
    where suppressed_at <= {{ as_of_end() }} and contact_point is not null
),

erasures as (
    select distinct contact_point from {{ ref('stg_consent__erasure_requests') }}
    where requested_at <= {{ as_of_end() }} and contact_point is not null
),

ranked as (
    select
        *,
        row_number() over (
            partition by contact_point, channel, purpose
            order by captured_at desc, consent_event_id desc
        ) as recency_rank
    from events
),

latest as (
    select * from ranked
    where recency_rank = 1
),

suppressed as (
    select
        latest.consent_event_id,
        min(suppressions.suppression_reason) as suppression_reason
    from latest
    inner join suppressions
        on
            latest.contact_point = suppressions.contact_point
            and (latest.channel = suppressions.channel or suppressions.channel = 'all')
    group by latest.consent_event_id
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
        suppressed.consent_event_id is not null as is_suppressed,
        suppressed.suppression_reason,
        erasures.contact_point is not null as is_erased,
        (
            latest.consent_status = 'granted'
            and coalesce(latest.expires_at > {{ as_of_end() }}, true)
            and suppressed.consent_event_id is null
            and erasures.contact_point is null
        ) as is_consented,
        {{ as_of_date() }} as as_of
    from latest
    left join suppressed on latest.consent_event_id = suppressed.consent_event_id
    left join erasures on latest.contact_point = erasures.contact_point
)

select * from final
