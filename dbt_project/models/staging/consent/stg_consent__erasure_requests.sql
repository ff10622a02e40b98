with source as (
    {{ latest_version(source('consent', 'erasure_requests'), 'erasure_request_id', 'requested_at') }}
),

renamed as (
    select
        erasure_request_id,
        {{ normalize_contact_point('contact_point_type', 'contact_point') }} as contact_point,
        contact_point_type,
        requested_at
    from source
)

select * from renamed
