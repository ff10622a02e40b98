{#- One row per email-platform engagement event: its latest version, the rows of
    stg_email__engagement (same columns, macros/staging_columns.sql) plus the load stamp of that
    version. Incremental (macros/activity_mirror.sql): only events with a version published since
    the last build are re-ranked. -#}

-- after the staging view: its build waits for the night's erasure step, so this one does too
-- depends_on: {{ ref('stg_email__engagement') }}
{{ activity_mirror(
    'email', 'engagement', 'engagement_event_id', 'occurred_at', stg_email__engagement_columns()
) }}
