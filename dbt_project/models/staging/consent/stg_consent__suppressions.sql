with source as (
    {{ latest_version(source('consent', 'suppressions'), 'suppression_id', 'updated_at') }}
),

renamed as (
    select
        suppression_id,
        case
            when contact_point_type = 'email' then {{ normalize_email('contact_point') }}
            else {{ phone_e164('contact_point') }}
        end as contact_point,
        contact_point_type,
        channel,
        reason as suppression_reason,
        suppressed_at
    from source
)

select * from renamed
