{#- One row per graph node with its final component key (the smallest node key of its
    component): int_identity__clusters, except in the components that passed a max_per_customer
    limit, which are recomputed without the links int_identity__limit_drops refuses (the pre-hook
    runs connected components on just that part of the graph). Customers are these components. -#}
{#- It reads the node types' keys and components only (not when a node was last seen, which the
    limit drops it reads already account for). -#}
{{ config(
    materialized='reusable_table',
    meta={'reads_columns': {'int_identity__node_types': ['node_key', 'component_key']}},
    pre_hook="{{ build_connected_components(identity_limited_links_sql(), identity_limited_nodes_sql(), var('identity_cc_max_passes'), keep_pass_log=false) }}",
    post_hook="{{ drop_connected_components_scratch() }}",
) }}

with clusters as (
    select * from {{ ref('int_identity__clusters') }}
),

violations as (
    select distinct component_key from {{ ref('int_identity__limit_violations') }}
),

-- depends on {{ ref('int_identity__limit_drops') }} and {{ ref('int_identity__node_types') }}
unchanged as (
    select
        clusters.node_key,
        clusters.component_key,
        clusters.is_record
    from clusters
    where not exists (
        select 1 from violations
        where violations.component_key = clusters.component_key
    )
),

resolved as (
    -- the limited part of the graph, from this model's pre-hook
    {{ cc_component_keys() }}
),

final as (
    select * from unchanged
    union all
    select * from resolved
)

select * from final
