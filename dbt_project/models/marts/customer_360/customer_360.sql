{#- One row per customer at as_of: golden record, order stats, RFM scores, engagement,
    reachability and consent per channel, then the trait models' columns (traits/, joined by
    with_traits). Windows are relative to as_of, never the wall clock. -#}
{%- set survivorship = var('survivorship') -%}
{%- set default_priority = survivorship.get('default_source_priority', []) -%}
with id_map as (
    select * from {{ ref('customer_id_map') }}
),

records as (
    select
        id_map.customer_id,
        int_records.*
    from {{ ref('int_identity__records') }} as int_records
    inner join id_map on int_records.record_key = id_map.record_key
),

{% for group, settings in survivorship['attributes'].items() %}
    golden_{{ group }} as (
        {{ survivor('records', settings['columns'], settings.get('source_priority', default_priority)) }}
    ),

{% endfor %}
customers as (
    select
        customer_id,
        count(*) as source_record_count,
        max(case when source = 'crm' then 1 else 0 end) = 1 as is_in_crm,
        max(case when source = 'shop' then 1 else 0 end) = 1 as is_in_shop,
        max(case when source = 'loyalty' then 1 else 0 end) = 1 as is_in_loyalty,
        max(case when source = 'web' then 1 else 0 end) = 1 as is_in_web
    from id_map
    group by customer_id
),

orders as (
    {{ resolved_revenue_orders('id_map') }}
),

order_stats as (
    select
        customer_id,
        count(*) as order_count,
        sum(total_amount) as lifetime_revenue,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        sum(case when ordered_at > {{ dbt.dateadd('day', -365, as_of_end()) }} then 1 else 0 end)
            as orders_last_365d
    from orders
    group by customer_id
),

loyalty as (
    select
        id_map.customer_id,
        max(members.loyalty_tier) as loyalty_tier,
        max(members.points_balance) as loyalty_points
    from {{ ref('stg_loyalty__members') }} as members
    inner join id_map
        on id_map.source = 'loyalty' and members.loyalty_member_id = id_map.source_record_id
    group by id_map.customer_id
),

customer_emails as (
    select distinct
        customer_id,
        email_normalized
    from records
    where email_normalized is not null
),

email_events as (
    -- the customers' email engagement of the 90 days to as_of
    select
        customer_emails.customer_id,
        engagement.event_type,
        engagement.occurred_at > {{ dbt.dateadd('day', -30, as_of_end()) }} as is_last_30d
    from {{ ref('int_activity__email_engagement') }} as engagement
    inner join customer_emails on engagement.email_normalized = customer_emails.email_normalized
    where
        engagement.occurred_at <= {{ as_of_end() }}
        and engagement.occurred_at > {{ dbt.dateadd('day', -90, as_of_end()) }}
),

email_engagement as (
    select
        customer_id,
        sum(case when event_type = 'opened' and is_last_30d then 1 else 0 end) as email_opens_30d,
        sum(case when event_type = 'clicked' and is_last_30d then 1 else 0 end) as email_clicks_30d,
        sum(case when event_type = 'opened' then 1 else 0 end) as email_opens_90d,
        sum(case when event_type = 'clicked' then 1 else 0 end) as email_clicks_90d
    from email_events
    group by customer_id
),

consent as (
    select * from {{ ref('consent_state') }}
),

customer_phones as (
    select distinct
        customer_id,
        phone_e164
    from records
    where phone_e164 is not null
),

erased as (
    -- an erasure of any of the customer's contact points, email or phone, erases the customer
    select customer_emails.customer_id
    from customer_emails
    inner join consent
        on customer_emails.email_normalized = consent.contact_point and consent.is_erased
    union
    select customer_phones.customer_id
    from customer_phones
    inner join consent
        on customer_phones.phone_e164 = consent.contact_point and consent.is_erased
),

assembled as (
    select
        customers.customer_id,
        {% for group, settings in survivorship['attributes'].items() %}
            {%- for column in settings['columns'] %}
                golden_{{ group }}.{{ column }},
            {%- endfor %}
        {% endfor %}
        customers.source_record_count,
        customers.is_in_crm,
        customers.is_in_shop,
        customers.is_in_loyalty,
        customers.is_in_web,
        loyalty.loyalty_tier,
        loyalty.loyalty_points,
        coalesce(order_stats.order_count, 0) as order_count,
        coalesce(order_stats.lifetime_revenue, 0) as lifetime_revenue,
        order_stats.first_ordered_at,
        order_stats.last_ordered_at,
        coalesce(order_stats.orders_last_365d, 0) as orders_last_365d,
        coalesce(email_engagement.email_opens_30d, 0) as email_opens_30d,
        coalesce(email_engagement.email_clicks_30d, 0) as email_clicks_30d,
        coalesce(email_engagement.email_opens_90d, 0) as email_opens_90d,
        coalesce(email_engagement.email_clicks_90d, 0) as email_clicks_90d,
        erased.customer_id is not null as is_erased
    from customers
    {% for group in survivorship['attributes'] %}
        left join golden_{{ group }} on customers.customer_id = golden_{{ group }}.customer_id
    {% endfor %}
    left join order_stats on customers.customer_id = order_stats.customer_id
    left join loyalty on customers.customer_id = loyalty.customer_id
    left join email_engagement on customers.customer_id = email_engagement.customer_id
    left join erased on customers.customer_id = erased.customer_id
),

with_consent as (
    select
        assembled.*,
        coalesce(email_consent.is_consented, false) as is_email_marketing_consented,
        coalesce(sms_consent.is_consented, false) as is_sms_marketing_consented
    from assembled
    left join consent as email_consent
        on
            assembled.email_normalized = email_consent.contact_point
            and email_consent.channel = 'email' and email_consent.purpose = 'marketing'
    left join consent as sms_consent
        on
            assembled.phone_e164 = sms_consent.contact_point
            and sms_consent.channel = 'sms' and sms_consent.purpose = 'marketing'
),

rfm_scores as (
    -- quintiles among buyers only: a window over every customer would sort the non-buyers too,
    -- only to discard their scores
    select
        customer_id,
        ntile(5) over (order by last_ordered_at asc, customer_id asc) as rfm_recency_score,
        ntile(5) over (order by order_count asc, customer_id asc) as rfm_frequency_score,
        ntile(5) over (order by coalesce(lifetime_revenue, 0) asc, customer_id asc) as rfm_monetary_score
    from order_stats
),

scored as (
    select
        with_consent.*,
        case
            when with_consent.order_count > 0 then
                {{ dbt.datediff('with_consent.last_ordered_at', as_of_end(), 'day') }}
        end as days_since_last_order,
        case
            when with_consent.order_count > 0 then with_consent.lifetime_revenue / with_consent.order_count
        end as average_order_value,
        rfm_scores.rfm_recency_score,
        rfm_scores.rfm_frequency_score,
        rfm_scores.rfm_monetary_score
    from with_consent
    left join rfm_scores on with_consent.customer_id = rfm_scores.customer_id
),

final as (
    select
        customer_id,
        first_name,
        last_name,
        email_normalized as email,
        phone_e164 as phone,
        date_of_birth,
        -- birthday campaigns: the as_of month (null when the date of birth is unknown)
        extract(month from date_of_birth) = extract(month from {{ as_of_date() }}) as is_birthday_month,
        address_line1,
        city,
        postal_code,
        country_code,
        coalesce(time_zone, case country_code
            when 'US' then 'America/New_York'
            when 'GB' then 'Europe/London'
            when 'DE' then 'Europe/Berlin'
            when 'FR' then 'Europe/Paris'
            when 'NL' then 'Europe/Amsterdam'
        end, 'UTC') as time_zone,
        cast(source_record_count as bigint) as source_record_count,
        is_in_crm,
        is_in_shop,
        is_in_loyalty,
        is_in_web,
        loyalty_tier,
        cast(loyalty_points as bigint) as loyalty_points,
        cast(order_count as bigint) as order_count,
        cast(lifetime_revenue as decimal(18, 2)) as lifetime_revenue,
        cast(average_order_value as decimal(18, 2)) as average_order_value,
        first_ordered_at,
        last_ordered_at,
        cast(days_since_last_order as bigint) as days_since_last_order,
        cast(orders_last_365d as bigint) as orders_last_365d,
        cast(rfm_recency_score as integer) as rfm_recency_score,
        cast(rfm_frequency_score as integer) as rfm_frequency_score,
        cast(rfm_monetary_score as integer) as rfm_monetary_score,
        cast(email_opens_30d as bigint) as email_opens_30d,
        cast(email_clicks_30d as bigint) as email_clicks_30d,
        cast(email_opens_90d as bigint) as email_opens_90d,
        cast(email_clicks_90d as bigint) as email_clicks_90d,
        email_normalized is not null and not is_erased as is_email_reachable,
        phone_e164 is not null and not is_erased as is_sms_reachable,
        is_email_marketing_consented and not is_erased as is_email_marketing_consented,
        is_sms_marketing_consented and not is_erased as is_sms_marketing_consented,
        is_erased,
        {{ as_of_date() }} as as_of
    from scored
)

{{ with_traits('final') }}
