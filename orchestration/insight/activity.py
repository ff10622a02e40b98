"""Where the insight steps read a source's activity: dbt's incremental mirrors
(docs/incremental.md), one row per key as its staging view shows it (same rows and columns,
plus `_loaded_at`). A staging view ranks every version in raw on each read; a mirror was ranked
once by the night's dbt build, which runs before every insight step (they depend on
customer_360, built from the mirrors), so the steps read what the marts were built from."""

WEB_EVENTS = "intermediate.int_activity__web_events"  # one row per event_id
EMAIL_ENGAGEMENT = "intermediate.int_activity__email_engagement"  # per engagement_event_id
ORDERS = "intermediate.int_activity__orders"  # one row per order_id
