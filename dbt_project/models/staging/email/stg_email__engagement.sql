{#- One row per email-platform engagement event: its latest version in raw. Columns in
    macros/staging_columns.sql, shared with the incremental mirror int_activity__email_engagement. -#}
{{ staged(
    source('email', 'engagement'), 'engagement_event_id', 'occurred_at', stg_email__engagement_columns()
) }}
