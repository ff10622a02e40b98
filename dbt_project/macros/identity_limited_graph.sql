{#- The part of the graph max_per_customer limits act on, as derived tables for
    build_connected_components: links of the components int_identity__limit_violations names,
    minus the links int_identity__limit_drops refuses, and all nodes of those components. -#}
{% macro identity_limited_links_sql() -%}
    (
        select edges.record_key, edges.node_key
        from {{ ref('int_identity__edges') }} as edges
        inner join {{ ref('int_identity__node_types') }} as node_types
            on edges.record_key = node_types.node_key
        where
            node_types.component_key in (
                select violations.component_key
                from {{ ref('int_identity__limit_violations') }} as violations
            )
            and not exists (
                select 1 from {{ ref('int_identity__limit_drops') }} as limit_drops
                where limit_drops.record_key = edges.record_key and limit_drops.node_key = edges.node_key
            )
    )
{%- endmacro %}

{% macro identity_limited_nodes_sql() -%}
    (
        select node_types.node_key as record_key
        from {{ ref('int_identity__node_types') }} as node_types
        where node_types.component_key in (
            select violations.component_key
            from {{ ref('int_identity__limit_violations') }} as violations
        )
    )
{%- endmacro %}
