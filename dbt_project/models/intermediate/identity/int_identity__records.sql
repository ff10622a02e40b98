{#- One row per identity-bearing source record (CRM contact, shop customer, loyalty member, web
    anonymous id) with the attributes survivorship chooses from. Soft-deleted CRM contacts and
    records first seen after as_of are left out. -#}
{#- The as_of is read only as `<= as_of_end()` filters (reusable_table: kept on a night that
    brings none of these relations a row by the as_of's end). -#}
{{ config(
    materialized='reusable_table',
    meta={'as_of_filters': {
        'stg_crm__contacts': 'created_at', 'stg_shop__customers': 'created_at',
        'stg_loyalty__members': 'joined_at', 'int_activity__web_events': 'occurred_at',
    }},
) }}
with crm_contacts as (
    select * from {{ ref('stg_crm__contacts') }}
    where not is_deleted and created_at <= {{ as_of_end() }}
),

shop_customers as (
    select * from {{ ref('stg_shop__customers') }}
    where created_at <= {{ as_of_end() }}
),

loyalty_members as (
    select * from {{ ref('stg_loyalty__members') }}
    where joined_at <= {{ as_of_end() }}
),

web_events as (
    select * from {{ ref('int_activity__web_events') }}
    where occurred_at <= {{ as_of_end() }}
),

-- the web's records are its anonymous ids, last seen when their latest event arrived
web_ids as (
    select
        anonymous_id,
        max(received_at) as updated_at
    from web_events
    group by anonymous_id
),

crm as (
    {{ identity_records(
        'crm_contacts', 'crm', 'contacts', 'crm_contact_id', 1,
        kept=[
            'first_name', 'last_name', 'email_normalized', 'date_of_birth', 'address_line1',
            'address_line2', 'city', 'postal_code', 'region', 'country_code', 'time_zone',
        ],
        renamed={'phone_e164': 'coalesce(mobile_phone_e164, phone_e164)'}
    ) }}
),

loyalty as (
    {{ identity_records(
        'loyalty_members', 'loyalty', 'members', 'loyalty_member_id', 2,
        kept=[
            'first_name', 'last_name', 'email_normalized', 'phone_e164', 'address_line1', 'city',
            'postal_code',
        ],
        renamed={'date_of_birth': 'birthday'}
    ) }}
),

shop as (
    {{ identity_records(
        'shop_customers', 'shop', 'customers', 'shop_customer_id', 3,
        kept=[
            'first_name', 'last_name', 'email_normalized', 'phone_e164', 'address_line1',
            'address_line2', 'city', 'postal_code', 'country_code',
        ]
    ) }}
),

web as (
    {{ identity_records('web_ids', 'web', 'anonymous_ids', 'anonymous_id', 4) }}
),

unioned as (
    select * from crm
    union all
    select * from loyalty
    union all
    select * from shop
    union all
    select * from web
),

final as (
    select
        'r|' || source || ':' || entity || ':' || source_record_id as record_key,
        *
    from unioned
)

select * from final
