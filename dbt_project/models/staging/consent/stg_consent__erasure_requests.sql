{#- One row per erasure request: its latest version in raw. -#}
{% set columns %}
    erasure_request_id,
    {{ normalize_contact_point('contact_point_type', 'contact_point') }} as contact_point,
    contact_point_type,
    requested_at
{% endset -%}
{{ staged(source('consent', 'erasure_requests'), 'erasure_request_id', 'requested_at', columns) }}
