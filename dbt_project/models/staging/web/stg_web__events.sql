with source as (
    {{ latest_version(source('web', 'events'), 'event_id', 'received_at') }}
),

renamed as (
    select
        event_id,
        anonymous_id,
        nullif(trim(user_id), '') as shop_customer_id,
        event_name,
        platform,
        properties,
        occurred_at,
        received_at
    from source
)

select * from renamed
