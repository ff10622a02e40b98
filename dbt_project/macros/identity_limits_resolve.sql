{#- Pre-hook of int_identity__limit_drops: which links to refuse so that no customer passes a
    max_per_customer limit, merging by priority like a person would.

    Only the components int_identity__limit_violations names are touched (usually none). In each,
    links are added one priority level at a time (permanent ids first, device ids last); after a
    level, in every component that now passes a limit, that level's BRIDGING links are refused: a
    value whose records lie in two or more components of the previous level, or a record-to-record
    link between two of them. Links that only attach a value to one component stay. So a
    stronger merge is never undone by a weaker one, and a weak link never merges two CRM contacts.
    Leaves the refused links in temporary table <model>__dropped (record_key, node_key,
    exceeded_type, priority) for the model's select. -#}
{% macro resolve_identity_limits(max_passes) %}
    {%- if execute -%}
        {%- set prefix = this.identifier -%}
        {%- set sub_nodes = prefix ~ '__sub_nodes' -%}
        {%- set sub_links = prefix ~ '__sub_links' -%}
        {%- set dropped = prefix ~ '__dropped' -%}
        {#- a node's label before and after the level: two tables whose roles swap each level -#}
        {%- set label_tables = [prefix ~ '__previous', prefix ~ '__labelled'] -%}
        {%- set level_violations = prefix ~ '__level_violations' -%}
        {%- set level_cc = prefix ~ '__level' -%}
        {%- set node_types = ref('int_identity__node_types') -%}
        {%- for relation in [sub_nodes, sub_links, dropped, level_violations] + label_tables %}
            {%- do run_query('drop table if exists ' ~ relation) -%}
        {%- endfor %}
        {%- do run_query(
            'create ' ~ temporary_table() ~ ' ' ~ sub_nodes ~ ' as
            select node_types.node_key as record_key
            from ' ~ node_types ~ ' as node_types
            where node_types.component_key in (
                select violations.component_key
                from ' ~ ref('int_identity__limit_violations') ~ ' as violations
            )'
        ) -%}
        {%- do run_query(
            'create ' ~ temporary_table() ~ ' ' ~ sub_links ~ ' as
            select
                edges.record_key,
                edges.node_key,
                ' ~ identity_link_priority('edges.identifier_type') ~ ' as priority
            from ' ~ ref('int_identity__edges') ~ ' as edges
            where edges.record_key in (select record_key from ' ~ sub_nodes ~ ')'
        ) -%}
        {%- do run_query(
            'create ' ~ temporary_table() ~ ' ' ~ dropped ~ ' as
            select record_key, node_key, cast(null as ' ~ sql_type('varchar') ~ ') as exceeded_type, priority
            from ' ~ sub_links ~ ' where 1 = 0'
        ) -%}
        {%- set labels = namespace(before=0) -%}
        {%- do run_query(
            'create ' ~ temporary_table() ~ ' ' ~ label_tables[0] ~ ' as
            select record_key as node_key, record_key as label from ' ~ sub_nodes
        ) -%}
        {%- set levels = run_query(
            'select distinct priority from ' ~ sub_links ~ ' order by priority'
        ).columns[0].values() -%}
        {%- for level in levels %}
            {%- set level = level | int -%}
            {%- set previous = label_tables[labels.before] -%}
            {%- set labelled = label_tables[1 - labels.before] -%}
            {%- set kept_links = '(select sub_links.record_key, sub_links.node_key from ' ~ sub_links
                ~ ' as sub_links where sub_links.priority <= ' ~ level ~ ' and not exists (select 1 from '
                ~ dropped ~ ' as dropped where dropped.record_key = sub_links.record_key'
                ~ ' and dropped.node_key = sub_links.node_key))' -%}
            {#- components with this level's links; again without the links refused, if any -#}
            {%- set state = namespace(refused=0) -%}
            {%- for attempt in ['check', 'after_drops'] if attempt == 'check' or state.refused > 0 %}
                {%- do build_connected_components(
                    kept_links, sub_nodes, max_passes, prefix=level_cc, keep_pass_log=false) -%}
                {%- do run_query('drop table if exists ' ~ labelled) -%}
                {%- do run_query(
                    'create ' ~ temporary_table() ~ ' ' ~ labelled ~ ' as
                    select components.node_key, components.component_key as label
                    from (' ~ cc_component_keys(level_cc) ~ ') as components'
                ) -%}
                {%- if attempt == 'check' -%}
                    {%- do run_query('drop table if exists ' ~ level_violations) -%}
                    {%- do run_query(
                        'create ' ~ temporary_table() ~ ' ' ~ level_violations ~ ' as '
                        ~ identity_limit_violations_sql(labelled, node_types)
                    ) -%}
                    {%- do run_query(
                        'insert into ' ~ dropped ~ '
                        with level_links as (
                            select sub_links.record_key, sub_links.node_key, sub_links.priority
                            from ' ~ sub_links ~ ' as sub_links
                            where sub_links.priority = ' ~ level ~ '
                        ),
                        placed as (
                            select
                                level_links.*,
                                record_before.label as record_before,
                                node_before.label as node_before,
                                now_labelled.label
                            from level_links
                            inner join ' ~ previous ~ ' as record_before
                                on level_links.record_key = record_before.node_key
                            inner join ' ~ previous ~ ' as node_before
                                on level_links.node_key = node_before.node_key
                            inner join ' ~ labelled ~ ' as now_labelled
                                on level_links.record_key = now_labelled.node_key
                        ),
                        value_spans as (
                            select node_key, count(distinct record_before) as components_before
                            from placed
                            where node_key like ' ~ "'v|%'" ~ '
                            group by node_key
                        ),
                        exceeded as (
                            select label, min(identifier_type) as exceeded_type
                            from ' ~ level_violations ~ '
                            group by label
                        )
                        select placed.record_key, placed.node_key, exceeded.exceeded_type, placed.priority
                        from placed
                        inner join exceeded on placed.label = exceeded.label
                        left join value_spans on placed.node_key = value_spans.node_key
                        where
                            value_spans.components_before > 1
                            or (placed.node_key like ' ~ "'r|%'" ~ ' and placed.record_before <> placed.node_before)'
                    ) -%}
                    {%- set state.refused = run_query(
                        'select count(*) from ' ~ dropped ~ ' where priority = ' ~ level
                    ).columns[0].values()[0] | int -%}
                    {{ log('identity limits: priority ' ~ level ~ ', links refused: '
                        ~ state.refused, info=True) }}
                {%- endif -%}
            {%- endfor %}
            {%- set labels.before = 1 - labels.before -%}
        {%- endfor %}
        {%- for name in ['nodes', 'settled'] %}
            {%- do run_query('drop table if exists ' ~ cc_scratch(name, level_cc)) -%}
        {%- endfor %}
        {%- for relation in [sub_nodes, level_violations] + label_tables %}
            {%- do run_query('drop table if exists ' ~ relation) -%}
        {%- endfor %}
    {%- endif -%}
{% endmacro %}

{% macro drop_identity_limits_scratch() %}
    {%- for suffix in ['__dropped', '__sub_links'] %}
        {%- do run_query('drop table if exists ' ~ this.identifier ~ suffix) -%}
    {%- endfor %}
{% endmacro %}
