{#- Connected components of an identity graph, run as a model's pre-hook, one statement at a time.

    Why statements and not one query: each pass reads only the previous pass's labels, so running
    passes as separate statements keeps memory at a few integer tables whatever the number of
    passes, lets the loop stop when converged (the pass count is measured, not guessed), and lets
    every pass skip the components already finished — most are after one or two passes, so later
    passes touch only the long chains. Node keys are strings; the passes work on dense integer ids
    numbered in key order, so the smallest id of a component is its smallest key.

    Each pass: every node takes the smallest label it or a neighbour holds; every tree root is
    hooked onto the smallest label any member of its tree has seen; then three pointer-jumping
    shortcuts (label := label's label). The passes grow with the logarithm of the longest chain.
    A tree (nodes sharing a label) with no link leaving it is a whole component: settled.

    Works in temporary tables (session-scoped, never written to the database file): the model
    selects from <model>__cc_nodes (node, id) and <model>__cc_settled (id, label), and its post-hook
    (drop_connected_components_scratch) drops them. Keeps <model>__cc_passes (pass, active_nodes,
    unsettled_trees) for diagnostics. `prefix` names the scratch tables of further components runs
    in one model (identity limits); keep_pass_log=false keeps their pass log temporary.
    Portable: create temporary table as / drop table / insert, on DuckDB and Postgres. -#}
{% macro build_connected_components(
    links_relation, records_relation, max_passes, prefix=none, keep_pass_log=true
) %}
    {%- if execute -%}
        {%- set nodes = cc_scratch('nodes', prefix) -%}
        {%- set links = cc_scratch('links', prefix) -%}
        {%- set labels = cc_scratch('labels', prefix) -%}
        {%- set settled = cc_scratch('settled', prefix) -%}
        {%- set unsettled = cc_scratch('unsettled', prefix) -%}
        {%- set seen = cc_scratch('seen', prefix) -%}
        {%- set jumped = cc_scratch('jumped', prefix) -%}
        {%- set pass_log = cc_pass_log() if keep_pass_log else cc_scratch('passes', prefix) -%}
        {%- for relation in [nodes, links, labels, settled, unsettled, seen, jumped, pass_log] %}
            {%- do run_query('drop table if exists ' ~ relation) -%}
        {%- endfor %}
        {%- do run_query(
            'create ' ~ temporary_table() ~ ' ' ~ nodes ~ ' as
            select node, cast(row_number() over (order by node) as bigint) as id
            from (
                select record_key as node from ' ~ records_relation ~ ' as graph_records
                union
                select record_key from ' ~ links_relation ~ ' as graph_links
                union
                select node_key from ' ~ links_relation ~ ' as graph_links
            ) as all_nodes'
        ) -%}
        {%- do run_query(
            'create ' ~ temporary_table() ~ ' ' ~ links ~ ' as
            with pairs as (
                select left_node.id as src, right_node.id as dst
                from ' ~ links_relation ~ ' as graph_links
                inner join ' ~ nodes ~ ' as left_node on graph_links.record_key = left_node.node
                inner join ' ~ nodes ~ ' as right_node on graph_links.node_key = right_node.node
                where left_node.id <> right_node.id
            )
            select src, dst from pairs
            union
            select dst, src from pairs'
        ) -%}
        {%- do run_query(
            'create ' ~ temporary_table() ~ ' ' ~ labels ~ ' as select id, id as label from ' ~ nodes
        ) -%}
        {%- do run_query('create ' ~ temporary_table() ~ ' ' ~ settled ~ ' (id bigint, label bigint)') -%}
        {%- do run_query(
            'create ' ~ ('table ' if keep_pass_log else temporary_table() ~ ' ') ~ pass_log
            ~ ' (pass integer, active_nodes bigint, unsettled_trees bigint)'
        ) -%}
        {%- set state = namespace(unsettled=1) -%}
        {%- for pass in range(1, (max_passes | int) + 1) if state.unsettled > 0 %}
            {%- do run_query('drop table if exists ' ~ seen) -%}
            {%- do run_query(
                'create ' ~ temporary_table() ~ ' ' ~ seen ~ ' as
                with neighbours as (
                    select links.src as id, min(neighbour.label) as smallest
                    from ' ~ links ~ ' as links
                    inner join ' ~ labels ~ ' as neighbour on links.dst = neighbour.id
                    group by links.src
                ),
                smallest_seen as (
                    select
                        labels.id,
                        labels.label,
                        least(labels.label, coalesce(neighbours.smallest, labels.label)) as seen
                    from ' ~ labels ~ ' as labels
                    left join neighbours on labels.id = neighbours.id
                ),
                roots as (
                    select label as root, min(seen) as hooked
                    from smallest_seen
                    group by label
                )
                select
                    smallest_seen.id,
                    least(smallest_seen.seen, coalesce(roots.hooked, smallest_seen.seen)) as label
                from smallest_seen
                left join roots on smallest_seen.label = roots.root'
            ) -%}
            {#- three shortcuts: seen -> jumped -> seen -> labels (each drops what it consumed) -#}
            {%- for source, target in [(seen, jumped), (jumped, seen), (seen, labels)] %}
                {%- do run_query('drop table if exists ' ~ target) -%}
                {%- do run_query(
                    'create ' ~ temporary_table() ~ ' ' ~ target ~ ' as
                    select child.id, least(child.label, coalesce(parent.label, child.label)) as label
                    from ' ~ source ~ ' as child
                    left join ' ~ source ~ ' as parent on child.label = parent.id'
                ) -%}
            {%- endfor %}
            {#- every tree of an unfinished component has a link leaving it -#}
            {%- do run_query('drop table if exists ' ~ unsettled) -%}
            {%- do run_query(
                'create ' ~ temporary_table() ~ ' ' ~ unsettled ~ ' as
                select distinct src_label.label
                from ' ~ links ~ ' as links
                inner join ' ~ labels ~ ' as src_label on links.src = src_label.id
                inner join ' ~ labels ~ ' as dst_label on links.dst = dst_label.id
                where src_label.label <> dst_label.label'
            ) -%}
            {%- set state.unsettled = run_query(
                'select count(*) from ' ~ unsettled).columns[0].values()[0] | int -%}
            {%- set active = run_query(
                'select count(*) from ' ~ labels).columns[0].values()[0] | int -%}
            {%- do run_query(
                'insert into ' ~ pass_log ~ ' values ('
                ~ pass ~ ', ' ~ active ~ ', ' ~ state.unsettled ~ ')'
            ) -%}
            {{ log('connected components: pass ' ~ pass ~ ' over ' ~ active ~ ' nodes, '
                ~ state.unsettled ~ ' trees not yet whole components', info=True) }}
            {%- if state.unsettled > 0 -%}
                {%- do run_query(
                    'insert into ' ~ settled ~ '
                    select id, label from ' ~ labels ~ ' as labels
                    where not exists (
                        select 1 from ' ~ unsettled ~ ' as unsettled
                        where unsettled.label = labels.label
                    )'
                ) -%}
                {%- do run_query('drop table if exists ' ~ jumped) -%}
                {%- do run_query(
                    'create ' ~ temporary_table() ~ ' ' ~ jumped ~ ' as
                    select id, label from ' ~ labels ~ ' as labels
                    where exists (
                        select 1 from ' ~ unsettled ~ ' as unsettled
                        where unsettled.label = labels.label
                    )'
                ) -%}
                {%- do run_query('drop table if exists ' ~ labels) -%}
                {%- do run_query(
                    'create ' ~ temporary_table() ~ ' ' ~ labels ~ ' as select id, label from ' ~ jumped
                ) -%}
                {%- do run_query('drop table if exists ' ~ seen) -%}
                {%- do run_query(
                    'create ' ~ temporary_table() ~ ' ' ~ seen ~ ' as
                    select links.src, links.dst from ' ~ links ~ ' as links
                    where exists (
                        select 1 from ' ~ labels ~ ' as labels where labels.id = links.src
                    )'
                ) -%}
                {%- do run_query('drop table if exists ' ~ links) -%}
                {%- do run_query(
                    'create ' ~ temporary_table() ~ ' ' ~ links ~ ' as select src, dst from ' ~ seen
                ) -%}
            {%- endif -%}
        {%- endfor %}
        {%- if state.unsettled > 0 -%}
            {{ exceptions.raise_compiler_error(
                'connected components did not converge in ' ~ max_passes ~ ' passes ('
                ~ state.unsettled ~ ' trees are not yet whole components): raise var '
                ~ 'identity_cc_max_passes') }}
        {%- endif -%}
        {%- do run_query('insert into ' ~ settled ~ ' select id, label from ' ~ labels) -%}
        {%- for relation in [labels, unsettled, seen, jumped, links] %}
            {%- do run_query('drop table if exists ' ~ relation) -%}
        {%- endfor %}
    {%- endif -%}
{% endmacro %}

{#- A scratch table of the model being built: temporary (session-scoped, dropped with the
    connection), unqualified as temporary tables must be. -#}
{% macro cc_scratch(name, prefix=none) %}
    {{ return((prefix or this.identifier) ~ '__cc_' ~ name) }}
{% endmacro %}

{#- A select of the components build_connected_components computed for the model being built
    (its pre-hook): one row per graph node, node_key, component_key (the smallest node key of the
    node's component) and is_record (a record node, key 'r|…', rather than an identifier value). -#}
{% macro cc_component_keys(prefix=none) -%}
    select
        nodes.node as node_key,
        component.node as component_key,
        nodes.node like 'r|%' as is_record
    from {{ cc_scratch('settled', prefix) }} as settled
    inner join {{ cc_scratch('nodes', prefix) }} as nodes on settled.id = nodes.id
    inner join {{ cc_scratch('nodes', prefix) }} as component on settled.label = component.id
{%- endmacro %}

{#- The pass log kept next to the model: <model>__cc_passes. -#}
{% macro cc_pass_log() %}
    {{ return(api.Relation.create(
        database=this.database, schema=this.schema, identifier=this.identifier ~ '__cc_passes'
    )) }}
{% endmacro %}

{% macro drop_connected_components_scratch() %}
    {%- for name in ['nodes', 'settled'] %}
        {%- do run_query('drop table if exists ' ~ cc_scratch(name)) -%}
    {%- endfor %}
{% endmacro %}
