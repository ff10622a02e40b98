with source as (
    {{ latest_version(source('consent', 'suppressions'), 'suppression_id', 'updated_at') }}
),

renamed as (
    select
        suppression_id,
        {{ normalize_contact_point('contact_point_type', 'contact_point') }} as contact_point,
        contact_point_type,
        channel,
        reason as suppression_reason,
        suppressed_at
    from source
)

select * from renamed
