{#- One row per web/app event: its latest version, the rows of stg_web__events (same columns,
    macros/staging_columns.sql) plus the load stamp of that version. Incremental
    (macros/activity_mirror.sql): only events with a version published since the last build are
    re-ranked. -#}

-- after the staging view: its build waits for the night's erasure step, so this one does too
-- depends_on: {{ ref('stg_web__events') }}
{{ activity_mirror('web', 'events', 'event_id', 'received_at', stg_web__events_columns()) }}
