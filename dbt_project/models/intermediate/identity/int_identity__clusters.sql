{#- One row per graph node (record or identifier) with its component key: the smallest record key
    of its connected component.

    Each pass hooks every tree root onto the smallest label any of its members sees across an edge,
    then shortcuts every node three times (pointer jumping), so the passes needed grow with the
    logarithm of the longest identifier chain, not its length. var identity_cc_passes sets the
    passes; the test assert_identity_components_converged fails if they were not enough. -#}
{%- set passes = var('identity_cc_passes') | int -%}
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

{% for i in range(1, passes + 1) %}
    {%- set prev = 'labels_' ~ (i - 1) %}
    seen_{{ i }} as materialized (
    -- smallest label each node sees: its own or a neighbour's
        select
            {{ prev }}.node,
            {{ prev }}.label,
            least({{ prev }}.label, coalesce(min(neighbour_labels.label), {{ prev }}.label)) as seen
        from {{ prev }}
        left join edges on {{ prev }}.node = edges.node
        left join {{ prev }} as neighbour_labels on edges.neighbour = neighbour_labels.node
        group by {{ prev }}.node, {{ prev }}.label
    ),

    roots_{{ i }} as materialized (
    -- hook: every root adopts the smallest label any member of its tree has seen
        select
            label as root,
            min(seen) as hooked
        from seen_{{ i }}
        group by label
    ),

    hooked_{{ i }} as materialized (
        select
            seen_{{ i }}.node,
            least(seen_{{ i }}.seen, coalesce(roots_{{ i }}.hooked, seen_{{ i }}.seen)) as label
        from seen_{{ i }}
        left join roots_{{ i }} on seen_{{ i }}.label = roots_{{ i }}.root
    ),

    {% for j in range(1, 4) %}
        {%- set source = 'hooked_' ~ i if j == 1 else 'jump_' ~ i ~ '_' ~ (j - 1) %}
        jump_{{ i }}_{{ j }} as materialized (
            -- shortcut: point to your label's label
            select
                {{ source }}.node,
                least({{ source }}.label, coalesce(parent.label, {{ source }}.label)) as label
            from {{ source }}
            left join {{ source }} as parent on {{ source }}.label = parent.node
        ),

    {% endfor %}
    labels_{{ i }} as materialized (
        select * from jump_{{ i }}_3
    ),

{% endfor %}
final as (
    select
        node as node_key,
        label as component_key,
        node like 'r|%' as is_record
    from labels_{{ passes }}
)

select * from final
