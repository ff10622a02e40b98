{#- One row per identity-bearing source record (CRM contact, shop customer, loyalty member, web
    anonymous id) with the attributes survivorship chooses from. Soft-deleted CRM contacts and
    records first seen after as_of are left out. -#}
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

crm as (
    select
        'crm' as source,
        'contacts' as entity,
        crm_contact_id as source_record_id,
        1 as source_priority,
        first_name,
        last_name,
        email_normalized,
        coalesce(mobile_phone_e164, phone_e164) as phone_e164,
        date_of_birth,
        address_line1,
        address_line2,
        city,
        postal_code,
        region,
        country_code,
        time_zone,
        updated_at
    from crm_contacts
),

loyalty as (
    select
        'loyalty' as source,
        'members' as entity,
        loyalty_member_id as source_record_id,
        2 as source_priority,
        first_name,
        last_name,
        email_normalized,
        phone_e164,
        birthday as date_of_birth,
        address_line1,
        cast(null as varchar) as address_line2,
        city,
        postal_code,
        cast(null as varchar) as region,
        cast(null as varchar) as country_code,
        cast(null as varchar) as time_zone,
        updated_at
    from loyalty_members
),

shop as (
    select
        'shop' as source,
        'customers' as entity,
        shop_customer_id as source_record_id,
        3 as source_priority,
        first_name,
        last_name,
        email_normalized,
        phone_e164,
        cast(null as date) as date_of_birth,
        address_line1,
        address_line2,
        city,
        postal_code,
        cast(null as varchar) as region,
        country_code,
        cast(null as varchar) as time_zone,
        updated_at
    from shop_customers
),

web as (
    select
        'web' as source,
        'anonymous_ids' as entity,
        anonymous_id as source_record_id,
        4 as source_priority,
        cast(null as varchar) as first_name,
        cast(null as varchar) as last_name,
        cast(null as varchar) as email_normalized,
        cast(null as varchar) as phone_e164,
        cast(null as date) as date_of_birth,
        cast(null as varchar) as address_line1,
        cast(null as varchar) as address_line2,
        cast(null as varchar) as city,
        cast(null as varchar) as postal_code,
        cast(null as varchar) as region,
        cast(null as varchar) as country_code,
        cast(null as varchar) as time_zone,
        max(received_at) as updated_at
    from web_events
    group by anonymous_id
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
