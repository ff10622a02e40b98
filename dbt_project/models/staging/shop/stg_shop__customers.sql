{#- One row per shop customer account: its latest version in raw. -#}
{% set columns %}
    shop_customer_id,
    {{ normalize_email('email') }} as email_normalized,
    {{ phone_e164('phone', 'country_code') }} as phone_e164,
    {{ trimmed_text(['first_name', 'last_name']) }},
    country_code,
    {{ trimmed_text(['address_line1', 'address_line2', 'city', 'postal_code']) }},
    created_at,
    updated_at
{% endset -%}
{{ staged(source('shop', 'customers'), 'shop_customer_id', 'updated_at', columns) }}
