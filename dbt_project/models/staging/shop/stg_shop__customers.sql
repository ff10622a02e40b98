with source as (
    {{ latest_version(source('shop', 'customers'), 'shop_customer_id', 'updated_at') }}
),

renamed as (
    select
        shop_customer_id,
        {{ normalize_email('email') }} as email_normalized,
        {{ phone_e164('phone', 'country_code') }} as phone_e164,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        country_code,
        nullif(trim(address_line1), '') as address_line1,
        nullif(trim(address_line2), '') as address_line2,
        nullif(trim(city), '') as city,
        nullif(trim(postal_code), '') as postal_code,
        created_at,
        updated_at
    from source
)

select * from renamed
