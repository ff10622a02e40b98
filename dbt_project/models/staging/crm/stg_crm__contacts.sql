with source as (
    {{ latest_version(source('crm', 'contacts'), 'contact_id', 'updated_at') }}
),

renamed as (
    select
        contact_id as crm_contact_id,
        account_id as crm_account_id,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        {{ normalize_email('email') }} as email_normalized,
        {{ phone_e164('phone', 'country_code') }} as phone_e164,
        {{ phone_e164('mobile_phone', 'country_code') }} as mobile_phone_e164,
        date_of_birth,
        address_line1,
        address_line2,
        city,
        postal_code,
        region,
        country_code,
        time_zone,
        created_at,
        updated_at,
        is_deleted
    from source
)

select * from renamed
