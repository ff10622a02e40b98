-- Every accepted identity link (not refused by a limit) must end inside one component.
{{ config(meta={'dagster': {'ref': {'name': 'int_identity__components'}}, 'kept_with_inputs': true}) }}
with edges as (
    select * from {{ ref('int_identity__edges') }}
),

clusters as (
    select * from {{ ref('int_identity__components') }}
)

select
    edges.record_key,
    edges.node_key
from edges
inner join clusters as left_side on edges.record_key = left_side.node_key
inner join clusters as right_side on edges.node_key = right_side.node_key
where
    left_side.component_key <> right_side.component_key
    and not exists (
        select 1 from {{ ref('int_identity__limit_drops') }} as limit_drops
        where limit_drops.record_key = edges.record_key and limit_drops.node_key = edges.node_key
    )
