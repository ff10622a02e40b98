{#- One row per graph node (record or identifier) with its component label: the smallest record
    key in its connected component. Min-label hooking plus pointer jumping, a fixed number of
    passes (var identity_cc_passes); the test assert_identity_components_converged proves every
    edge ends inside one component. -#}
with links as (
    select
        record_key,
        node_key
    from {{ ref('int_identity__edges') }}
),

edges as materialized (
    select
        record_key as node,
        node_key as neighbour
    from links
    union
    select
        node_key as node,
        record_key as neighbour
    from links
),

nodes as (
    select record_key as node from {{ ref('int_identity__records') }}
    union
    select node from edges
),

labels_0 as materialized (
    select
        node,
        node as label
    from nodes
),

{% for i in range(1, var('identity_cc_passes') + 1) %}
    hooked_{{ i }} as materialized (
        select
            labels.node,
            least(labels.label, coalesce(min(neighbour_labels.label), labels.label)) as label
        from labels_{{ i - 1 }} as labels
        left join edges on labels.node = edges.node
        left join labels_{{ i - 1 }} as neighbour_labels on edges.neighbour = neighbour_labels.node
        group by labels.node, labels.label
    ),

    labels_{{ i }} as materialized (
        select
            hooked.node,
            least(hooked.label, coalesce(parent.label, hooked.label)) as label
        from hooked_{{ i }} as hooked
        left join hooked_{{ i }} as parent on hooked.label = parent.node
    ),

{% endfor %}
final as (
    select
        node as node_key,
        label as component_key,
        node like 'r|%' as is_record
    from labels_{{ var('identity_cc_passes') }}
)

select * from final
