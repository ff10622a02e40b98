{#- One row per accepted deterministic link between a record and an identifier or another
    record: the candidates minus the dropped links, plus record-to-record links through a value
    shared by different people (first_name_conflict) for the records whose first names agree.
    int_identity__edges adds the probabilistic links (asset identity/probabilistic_links) to it. -#}
{{ config(materialized='reusable_table') }}
{%- set max_distance = var("identity").get('name_max_edit_distance', 1) | int -%}
with candidates as (
    select * from {{ ref('int_identity__candidate_links') }}
),

dropped as (
    select * from {{ ref('int_identity__dropped_links') }}
),

name_conflicts as (
    select * from {{ ref('int_identity__name_conflicts') }}
),

kept as (
    select
        candidates.record_key,
        candidates.node_key,
        candidates.identifier_type,
        candidates.identifier_value,
        candidates.rule
    from candidates
    left join dropped
        on candidates.record_key = dropped.record_key and candidates.node_key = dropped.node_key
    where dropped.record_key is null
),

guarded as (
    select
        name_conflicts.record_key,
        name_conflicts.node_key,
        name_conflicts.identifier_type,
        name_conflicts.identifier_value,
        name_conflicts.first_name_key
    from name_conflicts
    inner join dropped
        on
            name_conflicts.record_key = dropped.record_key
            and name_conflicts.node_key = dropped.node_key
    where dropped.drop_reason = 'first_name_conflict'
),

same_name_pairs as (
    select
        left_side.record_key,
        right_side.record_key as node_key,
        left_side.identifier_type,
        left_side.identifier_value,
        'shared_' || left_side.identifier_type || '_same_first_name' as rule
    from guarded as left_side
    inner join guarded as right_side
        on
            left_side.node_key = right_side.node_key
            and left_side.record_key < right_side.record_key
    where
        {{ edit_distance('left_side.first_name_key', 'right_side.first_name_key') }}
        <= {{ max_distance }}
),

final as (
    select * from kept
    union all
    select * from same_name_pairs
)

select * from final
