{#- One row per suppression: its latest version in raw. -#}
{% set columns %}
    suppression_id,
    {{ normalize_contact_point('contact_point_type', 'contact_point') }} as contact_point,
    contact_point_type,
    channel,
    reason as suppression_reason,
    suppressed_at
{% endset -%}
{{ staged(source('consent', 'suppressions'), 'suppression_id', 'updated_at', columns) }}
