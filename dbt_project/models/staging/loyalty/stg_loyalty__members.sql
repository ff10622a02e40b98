{#- One row per loyalty member: its latest version in raw. -#}
{% set columns %}
    member_id as loyalty_member_id,
    nullif(trim(crm_contact_id), '') as crm_contact_id,
    {{ normalize_email('email') }} as email_normalized,
    {{ phone_e164('phone') }} as phone_e164,
    {{ trimmed_text(['first_name', 'last_name']) }},
    birthday,
    {{ trimmed_text(['address_line1', 'city', 'postal_code']) }},
    tier as loyalty_tier,
    points_balance,
    joined_at,
    updated_at
{% endset -%}
{{ staged(source('loyalty', 'members'), 'member_id', 'updated_at', columns) }}
