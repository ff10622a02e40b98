{#- One row per consent event: its latest version in raw. -#}
{% set columns %}
    consent_event_id,
    {{ normalize_contact_point('contact_point_type', 'contact_point') }} as contact_point,
    contact_point_type,
    channel,
    purpose,
    status as consent_status,
    captured_at,
    expires_at,
    source as capture_source
{% endset -%}
{{ staged(source('consent', 'events'), 'consent_event_id', 'captured_at', columns) }}
