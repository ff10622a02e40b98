{#- One row per candidate link between a record and an identifier (email, phone, name at a postal
    address: a record's own or, for a shop account, one its orders were shipped to) or another
    record (loyalty → CRM contact, web anonymous id → shop customer via identify calls), before
    the junk blocklist and per-value limits of var('identity') are applied. -#}
{#- The as_of is read only as `<= as_of_end()` filters (reusable_table: kept on a night that
    brings none of these relations a row by the as_of's end). -#}
{#- It reads the records' keys, names, contact points and address, a loyalty card's CRM contact,
    and the distinct identify calls and shipping addresses: a night that only moves a record's
    other columns (a web id's last-seen time) or repeats an identify call or an address keeps
    it (meta.reads_columns, meta.reads_distinct). -#}
{{ config(
    materialized='reusable_table',
    meta={
        'as_of_filters': {'int_activity__web_events': 'occurred_at', 'int_activity__orders': 'ordered_at'},
        'reads_columns': {
            'int_identity__records': [
                'record_key', 'first_name', 'last_name', 'email_normalized', 'phone_e164',
                'address_line1', 'postal_code',
            ],
            'stg_loyalty__members': ['loyalty_member_id', 'crm_contact_id'],
        },
        'reads_distinct': {
            'int_activity__web_events': ['anonymous_id', 'shop_customer_id'],
            'int_activity__orders': ['shop_customer_id', 'shipping_address_line1', 'shipping_postal_code'],
        },
    },
) }}
with records as (
    select * from {{ ref('int_identity__records') }}
),

web_events as (
    select * from {{ ref('int_activity__web_events') }}
    where occurred_at <= {{ as_of_end() }}
),

loyalty_members as (
    select * from {{ ref('stg_loyalty__members') }}
),

email_links as (
    select
        record_key,
        'v|email:' || email_normalized as node_key,
        'email' as identifier_type,
        email_normalized as identifier_value,
        'shared_email' as rule
    from records
    where email_normalized is not null
),

phone_links as (
    select
        record_key,
        'v|phone:' || phone_e164 as node_key,
        'phone' as identifier_type,
        phone_e164 as identifier_value,
        'shared_phone' as rule
    from records
    where phone_e164 is not null
),

shop_orders as (
    select * from {{ ref('int_activity__orders') }}
    where ordered_at <= {{ as_of_end() }}
),

-- A shop account's name at every address its orders were shipped to, next to its saved
-- default: the default is often missing or stale after a move, the address a customer ships to
-- is current. A gift carries the buyer's name to someone else's address, where it matches nobody.
shipping_addresses as (
    select
        records.record_key,
        records.first_name,
        records.last_name,
        shop_orders.shipping_address_line1 as address_line1,
        shop_orders.shipping_postal_code as postal_code
    from shop_orders
    inner join records
        on records.record_key = 'r|shop:customers:' || shop_orders.shop_customer_id
),

addresses as (
    select
        record_key,
        first_name,
        last_name,
        address_line1,
        postal_code
    from records
    union all
    select * from shipping_addresses
),

address_parts as (
    select distinct
        record_key,
        first_name,
        last_name,
        address_line1,
        postal_code
    from addresses
    where
        first_name is not null
        and last_name is not null
        and address_line1 is not null
        and postal_code is not null
),

-- each distinct value folded once (accents, ligatures, full-width forms, case: macros/fold.sql),
-- then joined back: names and postcodes recur across records and a shop account's orders, and
-- a fold of a value with a letter outside ASCII costs microseconds (docs/benchmarks.md)
{% for column in ['first_name', 'last_name', 'address_line1', 'postal_code'] %}
    folded_{{ column }} as {{ materialized_cte() }} (
        {{ folded_values('address_parts', column) }}
    ),

{% endfor %}
folded_addresses as {{ materialized_cte() }} (
    select distinct
        address_parts.record_key,
        folded_first_name.folded as first_name_key,
        folded_last_name.folded as last_name_key,
        folded_address_line1.folded as address_key,
        folded_postal_code.folded as postal_key
    from address_parts
    inner join folded_first_name on address_parts.first_name = folded_first_name.value
    inner join folded_last_name on address_parts.last_name = folded_last_name.value
    inner join folded_address_line1 on address_parts.address_line1 = folded_address_line1.value
    inner join folded_postal_code on address_parts.postal_code = folded_postal_code.value
),

name_address_keys as (
    select distinct
        record_key,
        {{ name_address_key('first_name_key', 'last_name_key', 'address_key', 'postal_key') }} as name_address
    from folded_addresses
),

-- Same first name, last name and postal address: a person's CRM contact, shop account and
-- loyalty card when they share no email or phone. Household members share the address and the
-- last name but not the first name; namesakes do not share the address.
name_address_links as (
    select
        record_key,
        'v|name_address:' || name_address as node_key,
        'name_address' as identifier_type,
        name_address as identifier_value,
        'shared_name_address' as rule
    from name_address_keys
    where name_address is not null
),

-- Record-to-record lookups: a loyalty card names its CRM contact, an identify call names the
-- shop account behind an anonymous id (once per anonymous id and account).
record_lookups as (
    select
        'r|loyalty:members:' || loyalty_member_id as record_key,
        'r|crm:contacts:' || crm_contact_id as node_key,
        'crm_contact_id' as identifier_type,
        crm_contact_id as identifier_value,
        'loyalty_crm_lookup' as rule
    from loyalty_members
    where crm_contact_id is not null
    union all
    select distinct
        'r|web:anonymous_ids:' || anonymous_id as record_key,
        'r|shop:customers:' || shop_customer_id as node_key,
        'anonymous_id' as identifier_type,
        anonymous_id as identifier_value,
        'identify_call' as rule
    from web_events
    where shop_customer_id is not null
),

-- a lookup links only when the record it names exists
record_links as (
    select record_lookups.*
    from record_lookups
    inner join records on record_lookups.node_key = records.record_key
),

final as (
    select * from email_links
    union all
    select * from phone_links
    union all
    select * from name_address_links
    union all
    select * from record_links
)

select * from final
