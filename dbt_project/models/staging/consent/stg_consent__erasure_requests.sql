with source as (
    {{ latest_version(source('consent', 'erasure_requests'), 'erasure_request_id', 'requested_at') }}
),

renamed as (
    select
        erasure_request_id,
        case
            when contact_point_type = 'email' then {{ normalize_email('contact_point') }}
            else {{ phone_e164('contact_point') }}
        end as contact_point,
        contact_point_type,
        requested_at
    from source
)

select * from renamed
