{#- One row per accepted link between a record and an identifier or another record: the
    candidates minus the dropped links. This is the graph connected components run on. -#}
with candidates as (
    select * from {{ ref('int_identity__candidate_links') }}
),

dropped as (
    select * from {{ ref('int_identity__dropped_links') }}
),

final as (
    select
        candidates.record_key,
        candidates.node_key,
        candidates.identifier_type,
        candidates.rule
    from candidates
    left join dropped
        on candidates.record_key = dropped.record_key and candidates.node_key = dropped.node_key
    where dropped.record_key is null
)

select * from final
