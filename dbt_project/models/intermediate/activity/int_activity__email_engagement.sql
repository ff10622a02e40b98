{#- One row per email-platform engagement event: its latest version, the rows of
    stg_email__engagement (same columns, same renames) plus the load stamp of that version.
    Incremental (macros/incremental_mirror.sql): only events with a version published since the
    last build are re-ranked. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='engagement_event_id',
    on_schema_change='fail',
    post_hook="{{ mirror_drop_removed(source('email', 'engagement'), 'engagement_event_id') }}",
) }}

-- after the staging view: its build waits for the night's erasure step, so this one does too
-- depends_on: {{ ref('stg_email__engagement') }}
with source as (
    {%- set engagement = mirror_source(source('email', 'engagement'), 'engagement_event_id') %}
    {{ latest_version(engagement, 'engagement_event_id', 'occurred_at') }}
),

renamed as (
    select
        engagement_event_id,
        {{ normalize_email('email') }} as email_normalized,
        campaign_id,
        event_type,
        bounce_type,
        occurred_at,
        _loaded_at
    from source
)

select * from renamed
