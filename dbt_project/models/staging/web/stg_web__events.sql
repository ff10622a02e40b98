{#- One row per web/app event: its latest version in raw. Columns in macros/staging_columns.sql,
    shared with the incremental mirror int_activity__web_events. -#}
{{ staged(source('web', 'events'), 'event_id', 'received_at', stg_web__events_columns()) }}
