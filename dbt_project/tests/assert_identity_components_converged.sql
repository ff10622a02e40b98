-- Every identity link must end inside one component; rows here mean more passes are needed.
with edges as (
    select * from {{ ref('int_identity__edges') }}
),

clusters as (
    select * from {{ ref('int_identity__clusters') }}
)

select
    edges.record_key,
    edges.node_key
from edges
inner join clusters as left_side on edges.record_key = left_side.node_key
inner join clusters as right_side on edges.node_key = right_side.node_key
where left_side.component_key <> right_side.component_key
