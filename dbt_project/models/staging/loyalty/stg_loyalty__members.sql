with source as (
    {{ latest_version(source('loyalty', 'members'), 'member_id', 'updated_at') }}
),

renamed as (
    select
        member_id as loyalty_member_id,
        nullif(trim(crm_contact_id), '') as crm_contact_id,
        {{ normalize_email('email') }} as email_normalized,
        {{ phone_e164('phone') }} as phone_e164,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        birthday,
        nullif(trim(address_line1), '') as address_line1,
        nullif(trim(city), '') as city,
        nullif(trim(postal_code), '') as postal_code,
        tier as loyalty_tier,
        points_balance,
        joined_at,
        updated_at
    from source
)

select * from renamed
