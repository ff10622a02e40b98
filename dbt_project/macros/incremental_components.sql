{#- Connected components of the identity graph, taking in only what changed since the last build
    when that is provably enough (docs/incremental.md, *Components from what changed only*). The
    pre-hook of int_identity__clusters; either way it leaves the temporary table <model>__cc_keys
    (node_key, component_key) the model selects from.

    The last build's components are the start when the warehouse is DuckDB, the build is not a
    full refresh, the nightly passes the project's code digest (C360_DBT_CODE_DIGEST) and it is
    the last build's, and the model's table and the links it was computed from (<model>__graph,
    written by remember_identity_graph in the same transaction as the table) hold exactly the
    rows recorded then (their digests in audit.model_fingerprints). An old component one of whose
    links or nodes is gone is reopened (a removal can split it); every other is still connected.
    The components are then those of a small graph: each untouched old component as one node (its
    component key, its smallest node key), each node of a reopened component and each new node
    on its own, and the new links and the reopened components' links between them. Its
    components' smallest keys are the smallest keys a full run assigns. Anything else: a full run
    over every link. -#}
{% macro build_identity_components(links_relation, records_relation, max_passes) %}
    {%- if execute -%}
        {%- set keys = cc_scratch('keys') -%}
        {%- do run_query('drop table if exists ' ~ keys) -%}
        {%- set delta = identity_components_delta(links_relation, records_relation) -%}
        {%- if delta -%}
            {%- do build_connected_components(
                delta ~ '_links', delta ~ '_records', max_passes, prefix=delta
            ) -%}
            {%- do identity_components_merge(delta, keys) -%}
        {%- else -%}
            {%- do build_connected_components(links_relation, records_relation, max_passes) -%}
            {%- do run_query(
                'create ' ~ temporary_table() ~ ' ' ~ keys ~ ' as
                select node_key, component_key from (' ~ cc_component_keys() ~ ') as components'
            ) -%}
            {%- do drop_connected_components_scratch() -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}

{% macro identity_components_graph() -%}
    {{ return(api.Relation.create(
        database=this.database, schema=this.schema, identifier=this.identifier ~ '__graph'
    )) }}
{%- endmacro %}

{#- The bookkeeping row's key in audit.model_fingerprints. -#}
{% macro identity_components_key() -%}
    {{ return(model.unique_id ~ '#graph') }}
{%- endmacro %}

{#- Prepares the small graph (temporary tables <prefix>_links and <prefix>_records) and returns
    its prefix when the last build's components can be reused, else none. -#}
{% macro identity_components_delta(links_relation, records_relation) %}
    {%- set digest = env_var('C360_DBT_CODE_DIGEST', '') -%}
    {%- if target.type != 'duckdb' or not digest or flags.FULL_REFRESH -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set graph = identity_components_graph() -%}
    {%- if load_cached_relation(this) is none or adapter.get_relation(
        database=graph.database, schema=graph.schema, identifier=graph.identifier) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- do reusable_table_ensure_store() -%}
    {%- set stored = run_query(
        "select inputs, output from audit.model_fingerprints where model = '"
        ~ identity_components_key() ~ "' and code = '" ~ digest ~ "'"
    ) -%}
    {%- if stored.rows | length == 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if reusable_table_digest(graph) != stored.rows[0][0]
        or reusable_table_digest(this) != stored.rows[0][1] -%}
        {{ log("connected components: the last build's table or links changed since; a full run", info=True) }}
        {{ return(none) }}
    {%- endif -%}
    {%- set prefix = this.identifier ~ '__delta' -%}
    {%- for suffix in ['_new', '_touched', '_rep', '_links', '_records'] %}
        {%- do run_query('drop table if exists ' ~ prefix ~ suffix) -%}
    {%- endfor %}
    {%- do run_query(
        'create temporary table ' ~ prefix ~ '_new as
        select record_key, node_key from ' ~ links_relation ~ '
        except
        select record_key, node_key from ' ~ graph
    ) -%}
    {#- the old components a removal may split: those of a link that is gone, and of a record
        that is gone (a node that is neither a record nor an end of a link any more was an end
        of a link that is gone; reopening a component a removal did not split is harmless) -#}
    {%- do run_query(
        'create temporary table ' ~ prefix ~ '_touched as
        with gone_links as (
            select record_key, node_key from ' ~ graph ~ '
            except
            select record_key, node_key from ' ~ links_relation ~ '
        )
        select old.component_key
        from ' ~ this ~ ' as old
        inner join gone_links on old.node_key = gone_links.record_key
        union
        select old.component_key
        from ' ~ this ~ ' as old
        where old.is_record and not exists (
            select 1 from ' ~ records_relation ~ ' as graph_records
            where graph_records.record_key = old.node_key
        )'
    ) -%}
    {#- a node of an untouched old component stands for it (its key); any other node, new or of a
        touched component, stands for itself -#}
    {%- do run_query(
        'create temporary table ' ~ prefix ~ '_rep as
        select old.node_key, old.component_key as rep
        from ' ~ this ~ ' as old
        where not exists (
            select 1 from ' ~ prefix ~ '_touched as touched
            where touched.component_key = old.component_key
        )'
    ) -%}
    {#- the links a full run would see crossing the stand-ins: the new ones, and every link of a
        touched component's node (an old link lies inside one old component) -#}
    {%- do run_query(
        'create temporary table ' ~ prefix ~ '_links as
        with crossing as (
            select record_key, node_key from ' ~ prefix ~ '_new
            union
            select graph_links.record_key, graph_links.node_key
            from ' ~ links_relation ~ ' as graph_links
            inner join ' ~ this ~ ' as old on graph_links.record_key = old.node_key
            inner join ' ~ prefix ~ '_touched as touched on old.component_key = touched.component_key
        )
        select
            coalesce(left_rep.rep, crossing.record_key) as record_key,
            coalesce(right_rep.rep, crossing.node_key) as node_key
        from crossing
        left join ' ~ prefix ~ '_rep as left_rep on crossing.record_key = left_rep.node_key
        left join ' ~ prefix ~ '_rep as right_rep on crossing.node_key = right_rep.node_key'
    ) -%}
    {%- do run_query(
        'create temporary table ' ~ prefix ~ '_records as
        select record_key from ' ~ records_relation ~ ' as graph_records
        where not exists (
            select 1 from ' ~ prefix ~ '_rep as rep where rep.node_key = graph_records.record_key
        )'
    ) -%}
    {%- set sizes = run_query(
        'select (select count(*) from ' ~ prefix ~ '_new), (select count(*) from '
        ~ prefix ~ '_touched), (select count(*) from ' ~ prefix ~ '_records)'
    ).rows[0] -%}
    {{ log('connected components: from the last build\'s, with ' ~ sizes[0] ~ ' new links, '
        ~ sizes[1] ~ ' components reopened by a removal, ' ~ sizes[2] ~ ' records on their own',
        info=True) }}
    {%- do run_query('drop table if exists ' ~ prefix ~ '_new') -%}
    {%- do run_query('drop table if exists ' ~ prefix ~ '_touched') -%}
    {{ return(prefix) }}
{% endmacro %}

{#- <keys> (node_key, component_key) for every node of the graph: a node of an untouched old
    component takes its component key's new key (itself when no new link reached it); any other
    node, new or of a reopened component, is a node of the small graph and takes its key there. -#}
{% macro identity_components_merge(prefix, keys) %}
    {%- do run_query('drop table if exists ' ~ prefix ~ '_map') -%}
    {%- do run_query(
        'create temporary table ' ~ prefix ~ '_map as
        select node_key, component_key from (' ~ cc_component_keys(prefix) ~ ') as merged'
    ) -%}
    {%- do run_query(
        'create temporary table ' ~ keys ~ ' as
        select rep.node_key, coalesce(stand_in.component_key, rep.rep) as component_key
        from ' ~ prefix ~ '_rep as rep
        left join ' ~ prefix ~ '_map as stand_in on rep.rep = stand_in.node_key
        union all
        select own.node_key, own.component_key
        from ' ~ prefix ~ '_map as own
        where not exists (
            select 1 from ' ~ prefix ~ '_rep as rep where rep.node_key = own.node_key
        )'
    ) -%}
    {%- for relation in [prefix ~ '_map', prefix ~ '_rep', prefix ~ '_links', prefix ~ '_records',
        cc_scratch('nodes', prefix), cc_scratch('settled', prefix)] %}
        {%- do run_query('drop table if exists ' ~ relation) -%}
    {%- endfor %}
{% endmacro %}

{#- Post-hook: keep the links the table was computed from and both digests, in the transaction
    that publishes the table (DuckDB, nightly only; elsewhere the next build is a full run). -#}
{% macro remember_identity_graph(links_relation) %}
    {%- set digest = env_var('C360_DBT_CODE_DIGEST', '') -%}
    {%- if execute and target.type == 'duckdb' and digest -%}
        {%- set graph = identity_components_graph() -%}
        {%- do reusable_table_ensure_store() -%}
        {%- do run_query(
            'create or replace table ' ~ graph ~ ' as
            select record_key, node_key from ' ~ links_relation
        ) -%}
        {%- do run_query(
            "delete from audit.model_fingerprints where model = '" ~ identity_components_key() ~ "';
            insert into audit.model_fingerprints (model, code, inputs, output, built_by_run,
            built_as_of) values ('" ~ identity_components_key() ~ "', '"
            ~ digest ~ "', '" ~ reusable_table_digest(graph) ~ "', '" ~ reusable_table_digest(this)
            ~ "', '" ~ run_id_value() ~ "', '" ~ as_of_value() ~ "')"
        ) -%}
    {%- endif -%}
{% endmacro %}
