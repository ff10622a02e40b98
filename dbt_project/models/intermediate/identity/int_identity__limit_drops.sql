{#- One row per accepted link refused because the customer it would help form passes a
    max_per_customer limit (var('identity').identifiers.<type>): drop_reason max_per_customer and
    the type whose limit was passed. Computed by the pre-hook resolve_identity_limits (macros/
    identity_limits_resolve.sql), which merges by priority level and refuses a level's bridging
    links where they pass a limit. Never silent: every refusal is here. Usually empty. -#}
{{ config(
    materialized='reusable_table',
    pre_hook="{{ resolve_identity_limits(var('identity_cc_max_passes')) }}",
    post_hook="{{ drop_identity_limits_scratch() }}",
) }}

with dropped as (
    select * from {{ this.identifier }}__dropped
),

edges as (
    select * from {{ ref('int_identity__edges') }}
),

-- depends on {{ ref('int_identity__limit_violations') }} and {{ ref('int_identity__node_types') }}
final as (
    select
        dropped.record_key,
        dropped.node_key,
        edges.identifier_type,
        edges.identifier_value,
        edges.rule,
        'max_per_customer' as drop_reason,
        dropped.exceeded_type,
        dropped.priority
    from dropped
    inner join edges
        on dropped.record_key = edges.record_key and dropped.node_key = edges.node_key
)

select * from final
