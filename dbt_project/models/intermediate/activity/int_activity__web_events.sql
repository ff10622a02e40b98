{#- One row per web/app event: its latest version, the rows of stg_web__events (same columns,
    same renames) plus the load stamp of that version. Incremental (macros/incremental_mirror.sql):
    only events with a version published since the last build are re-ranked. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='event_id',
    on_schema_change='fail',
    post_hook="{{ mirror_drop_removed(source('web', 'events'), 'event_id') }}",
) }}

-- after the staging view: its build waits for the night's erasure step, so this one does too
-- depends_on: {{ ref('stg_web__events') }}
with source as (
    {{ latest_version(mirror_source(source('web', 'events'), 'event_id'), 'event_id', 'received_at') }}
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
        received_at,
        _loaded_at
    from source
)

select * from renamed
