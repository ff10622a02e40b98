{#- One row per graph node (record or identifier value) with its component before limits, the
    identifier type it stands for and when it was last seen (a record's updated_at; a value's
    latest updated_at among the records carrying it), for max_per_customer limits and explain. -#}
{{ config(materialized='reusable_table') }}
with clusters as (
    select * from {{ ref('int_identity__clusters') }}
),

records as (
    select
        record_key,
        updated_at
    from {{ ref('int_identity__records') }}
),

edges as (
    select * from {{ ref('int_identity__edges') }}
),

value_seen as (
    select
        edges.node_key,
        max(records.updated_at) as seen_at
    from edges
    inner join records on edges.record_key = records.record_key
    where edges.node_key like 'v|%'
    group by edges.node_key
),

final as (
    select
        clusters.node_key,
        clusters.component_key,
        {{ identity_node_type('clusters.node_key') }} as identifier_type,
        coalesce(records.updated_at, value_seen.seen_at) as seen_at
    from clusters
    left join records on clusters.node_key = records.record_key
    left join value_seen on clusters.node_key = value_seen.node_key
)

select * from final
