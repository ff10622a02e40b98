{#- Materialization `reusable_table`: a table that is rebuilt only when what it is built from
    changed since its last build, and otherwise kept as it is (docs/incremental.md, *Identity
    chain: a table kept when nothing it reads changed*).

    A model's table is a function of its compiled SQL, its hooks, the project's code (macros the
    hooks call, dbt_project.yml vars), the run's `--vars` and the rows of the relations it reads
    (its refs and sources, dbt's depends_on). When all of them equal those of the last build, a
    rebuild would write the same rows: the table is kept, and dbt reports the model as built.
    `audit.model_fingerprints` (one row per model) keeps, from its last build: the code
    fingerprint, each input's digest and the table's own digest. A digest is the row count and
    the sum of every row's hash (equal for equal row sets, in any order). Before keeping the
    table, the code fingerprint is compared first (cheap: a model that reads the as_of changes
    every night and is rebuilt without reading its inputs), then every input's digest, then the
    table's own digest (a table changed since its build, by an erasure or by hand, is rebuilt).

    A model that reads only some columns of a relation may say so in `meta.reads_columns`
    ({relation name: [column, …]}): that input's digest then covers those columns only, so a
    change in another column keeps the table. One that reads only the distinct rows of some
    columns (its SQL takes them with `select distinct`) says so in
    `meta.reads_distinct` instead: the digest covers those rows once each, so a row repeating
    one already there keeps the table.

    A model that reads the as_of only in filters `<column> <= {{ as_of_end() }}` on relations it
    reads may say so in `meta.as_of_filters` ({relation name: column}): its code fingerprint then
    leaves the as_of out (any other use of the as_of in its SQL stops the build, naming the model)
    and those inputs' digests cover only their rows up to the as_of's end, so the table is kept
    across as_ofs when no row of them falls between the two (a night with nothing new).

    A model whose table at another as_of, built from the same input rows, differs only in
    columns that hold the as_of may say so in `meta.kept_across_as_of` ([column, …]; [] for
    none): its code fingerprint then leaves the as_of out wherever it appears (SQL, `--vars`,
    the run values its hooks read), and a kept table has those columns set to the run's as_of.
    Its inputs' digests are taken after its hooks ran (a hook may write what the model reads:
    the persistent-id registry), so a night that changes nothing keeps it. The declaration is
    the model's promise (docs/incremental.md).

    Only on DuckDB, and only where the nightly passes the project's code digest
    (C360_DBT_CODE_DIGEST, orchestration/dbt_invocations.py): a plain `dbt build`, `--full-refresh`
    and every other engine build the table as the `table` materialization does. -#}
{% materialization reusable_table, adapter='duckdb', supported_languages=['sql'] %}
    {%- set code = reusable_table_code_fingerprint() -%}
    {%- set restamp = reusable_table_restamp() -%}
    {%- set kept = none -%}
    {%- set inputs = none -%}
    {%- if code -%}
        {%- do reusable_table_ensure_store() -%}
    {%- endif -%}
    {%- if code and not should_full_refresh() and load_cached_relation(this) is not none -%}
        {%- set kept = reusable_table_stored(code) -%}
    {%- endif -%}
    {%- if kept is not none -%}
        {%- set inputs = reusable_table_inputs_digest() -%}
        {%- if inputs == kept['inputs'] and reusable_table_digest(this) == kept['output'] -%}
            {{ log('c360 reused: ' ~ this ~ ' (its code and inputs are those of its last build)', info=True) }}
            {%- call statement('main') -%}
                select 1
            {%- endcall -%}
            {%- if restamp -%}
                {%- do reusable_table_set_as_of(restamp) -%}
            {%- endif -%}
            {%- do reusable_table_verified(restamp) -%}
            {%- do log_row_count() -%}
            {{ return({'relations': [this]}) }}
        {%- endif -%}
    {%- endif -%}
    {%- set built = materialization_table_duckdb() -%}
    {%- if code -%}
        {%- do reusable_table_remember(code, none if restamp is not none else inputs) -%}
    {%- endif -%}
    {{ return(built) }}
{% endmaterialization %}

{% materialization reusable_table, default, supported_languages=['sql'] %}
    {{ return(materialization_table_default()) }}
{% endmaterialization %}

{% materialization reusable_table, adapter='spark', supported_languages=['sql'] %}
    {{ return(materialization_table_spark()) }}
{% endmaterialization %}

{#- md5 of everything besides input rows that decides the table (empty: never reuse). -#}
{% macro reusable_table_code_fingerprint() -%}
    {%- set project = env_var('C360_DBT_CODE_DIGEST', '') -%}
    {%- if not project -%}
        {{ return('') }}
    {%- endif -%}
    {%- set hooks = [] -%}
    {%- for hook in (model.config.get('pre-hook') or []) + (model.config.get('post-hook') or []) -%}
        {%- do hooks.append(hook.sql if hook.sql is defined else hook) -%}
    {%- endfor -%}
    {%- set vars = dict(invocation_args_dict.get('vars') or {}) -%}
    {%- set sql = compiled_code -%}
    {%- set across = reusable_table_restamp() is not none -%}
    {%- if across -%}
        {%- set sql = sql | replace(as_of_value(), '<as_of>') if as_of_value() else sql -%}
        {%- do vars.pop('as_of', none) -%}
    {%- elif reusable_table_as_of_filters() -%}
        {%- set sql = reusable_table_without_as_of(sql) -%}
        {%- do vars.pop('as_of', none) -%}
    {%- endif -%}
    {%- set parts = [project, model.unique_id, sql, hooks | join('\n'), tojson(vars)] -%}
    {#- a hook's SQL is rendered as it runs: the run's values it may read count too -#}
    {%- if not across and modules.re.search('as_of|run_id', hooks | join('\n')) -%}
        {%- do parts.append(as_of_value() ~ '|' ~ run_id_value()) -%}
    {%- endif -%}
    {{ return(local_md5(parts | join('\x1f'))) }}
{%- endmacro %}

{#- Row count and sum of row hashes of `relation`. -#}
{% macro reusable_table_digest(relation) -%}
    {%- set result = run_query(
        'select count(*), coalesce(sum(hash(t)::hugeint), 0) from ' ~ relation ~ ' as t'
    ) -%}
    {%- set row = result.rows[0] -%}
    {{ return(row[0] ~ ':' ~ row[1]) }}
{%- endmacro %}

{#- The digests of every relation the model reads, in dependency order. -#}
{% macro reusable_table_inputs_digest() -%}
    {%- set digests = [] -%}
    {%- set filters = reusable_table_as_of_filters() -%}
    {%- set reads = reusable_table_meta('reads_columns') -%}
    {%- set distinct = reusable_table_meta('reads_distinct') -%}
    {%- for name in distinct if name in reads -%}
        {{ exceptions.raise_compiler_error(
            model.unique_id ~ ": " ~ name ~ " is in both meta.reads_columns and meta.reads_distinct"
        ) }}
    {%- endfor -%}
    {%- for declared in [reads, distinct] -%}
        {%- for name, listed in declared.items() if not listed -%}
            {{ exceptions.raise_compiler_error(
                model.unique_id ~ ": meta.reads_columns / reads_distinct lists no column of " ~ name
            ) }}
        {%- endfor -%}
    {%- endfor -%}
    {%- set verified = reusable_table_verified_this_run() -%}
    {%- for unique_id in model.depends_on.nodes | sort -%}
        {%- set node = graph.nodes.get(unique_id) or graph.sources.get(unique_id) -%}
        {%- set relation = api.Relation.create(
            database=node.database, schema=node.schema,
            identifier=node.alias if node.alias is defined and node.alias else node.identifier,
        ) -%}
        {%- set column = filters.get(node.name) -%}
        {%- set read = reads.get(node.name) or distinct.get(node.name) -%}
        {%- if not column and not read and unique_id in verified -%}
            {#- a reusable_table this run built or kept: its table's digest was taken then -#}
            {%- do digests.append(unique_id ~ '=' ~ verified[unique_id]) -%}
        {%- elif adapter.get_relation(
            database=relation.database, schema=relation.schema, identifier=relation.identifier
        ) is none -%}
            {#- a source not created yet (identity.probabilistic_links before its first run) -#}
            {%- do digests.append(unique_id ~ '=absent') -%}
        {%- else -%}
            {%- if column or read -%}
                {%- set quoted = [] -%}
                {%- for name in read or [] -%}
                    {%- do quoted.append(adapter.quote(name)) -%}
                {%- endfor -%}
                {%- set relation = '(select ' ~ ('distinct ' if node.name in distinct else '')
                    ~ (quoted | join(', ') if read else '*') ~ ' from '
                    ~ relation ~ (' where ' ~ adapter.quote(column) ~ ' <= ' ~ as_of_end() if column else '')
                    ~ ')' -%}
            {%- endif -%}
            {%- do digests.append(unique_id ~ '=' ~ reusable_table_digest(relation)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(digests | join(';')) }}
{%- endmacro %}

{% macro reusable_table_ensure_store() -%}
    {%- do run_query(
        'create schema if not exists audit;
        create table if not exists audit.model_fingerprints (
            model varchar primary key, code varchar not null, inputs varchar not null,
            output varchar not null, built_by_run varchar not null, built_as_of varchar not null
        );
        alter table audit.model_fingerprints add column if not exists verified_run varchar;
        create table if not exists audit.test_passes (
            test varchar primary key, fingerprint varchar not null, passed_run varchar not null
        )'
    ) -%}
{%- endmacro %}

{#- The stored inputs and output digests of this model's last build, when it had `code`. -#}
{% macro reusable_table_stored(code) -%}
    {%- set result = run_query(
        "select inputs, output from audit.model_fingerprints where model = '"
        ~ model.unique_id ~ "' and code = '" ~ code ~ "'"
    ) -%}
    {%- if result.rows | length == 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return({'inputs': result.rows[0][0], 'output': result.rows[0][1]}) }}
{%- endmacro %}

{#- After a build: keep its fingerprints (inputs are read after the build: dbt builds a model
    after every model it reads, so they are the rows it was built from). -#}
{% macro reusable_table_remember(code, inputs=none) -%}
    {%- set inputs = inputs or reusable_table_inputs_digest() -%}
    {%- set output = reusable_table_digest(this) -%}
    {%- do run_query(
        "delete from audit.model_fingerprints where model = '" ~ model.unique_id ~ "';
        insert into audit.model_fingerprints (model, code, inputs, output, built_by_run,
        built_as_of, verified_run) values ('" ~ model.unique_id ~ "', '" ~ code
        ~ "', '" ~ inputs ~ "', '" ~ output ~ "', '" ~ run_id_value() ~ "', '" ~ as_of_value()
        ~ "', '" ~ run_id_value() ~ "')"
    ) -%}
    {%- do adapter.commit() -%}
{%- endmacro %}

{#- meta.as_of_filters of the model ({relation name: column}). -#}
{% macro reusable_table_as_of_filters() -%}
    {{ return(reusable_table_meta('as_of_filters')) }}
{%- endmacro %}

{#- meta.<key> of the model ({relation name: …}), each name checked against what the model
    reads. -#}
{% macro reusable_table_meta(key) -%}
    {%- set declared = (model.config.get('meta') or {}).get(key) or {} -%}
    {%- set read = [] -%}
    {%- for unique_id in model.depends_on.nodes -%}
        {%- set node = graph.nodes.get(unique_id) or graph.sources.get(unique_id) -%}
        {%- do read.append(node.name) -%}
    {%- endfor -%}
    {%- for name in declared if name not in read -%}
        {{ exceptions.raise_compiler_error(
            model.unique_id ~ ": meta." ~ key ~ " names " ~ name ~ ", which the model does not read ("
            ~ read | sort | join(', ') ~ ")"
        ) }}
    {%- endfor -%}
    {{ return(declared) }}
{%- endmacro %}

{#- The compiled SQL with the as_of's end (the one use of the as_of meta.as_of_filters allows)
    replaced by a placeholder; any other appearance of the as_of stops the build. -#}
{% macro reusable_table_without_as_of(sql) -%}
    {%- set masked = sql | replace(as_of_end() | trim, '<as_of_end>') -%}
    {%- if as_of_value() and as_of_value() in masked -%}
        {{ exceptions.raise_compiler_error(
            model.unique_id ~ ": meta.as_of_filters says the model reads the as_of only as `column <= "
            ~ "{{ as_of_end() }}`, but its SQL holds the as_of " ~ as_of_value() ~ " otherwise"
        ) }}
    {%- endif -%}
    {{ return(masked) }}
{%- endmacro %}

{#- meta.kept_across_as_of of the model: the columns a kept table gets the run's as_of in
    ([] for none), or none when the model does not declare it. -#}
{% macro reusable_table_restamp() -%}
    {%- set declared = (model.config.get('meta') or {}).get('kept_across_as_of') -%}
    {%- if declared is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if declared is string -%}
        {{ exceptions.raise_compiler_error(
            model.unique_id ~ ": meta.kept_across_as_of is a list of column names, not '" ~ declared ~ "'"
        ) }}
    {%- endif -%}
    {{ return(declared | list) }}
{%- endmacro %}

{#- A kept table's as_of columns set to the run's as_of (only rows holding another value are
    written: a same-day rerun writes none). -#}
{% macro reusable_table_set_as_of(columns) -%}
    {%- for column in columns -%}
        {%- do run_query(
            'update ' ~ this ~ ' set ' ~ adapter.quote(column) ~ ' = ' ~ as_of_date()
            ~ ' where ' ~ adapter.quote(column) ~ ' is distinct from ' ~ as_of_date()
        ) -%}
    {%- endfor -%}
{%- endmacro %}

{#- {model unique_id: output digest} of the reusable_table models this run (the nightly's
    run id) built or kept: their tables' digests, taken then. A relation read later in the run
    holds those rows (within a run only its models write them: the erasure step runs before
    dbt), so a reader takes its digest from here instead of scanning it again. Empty without a
    run id. -#}
{% macro reusable_table_verified_this_run() -%}
    {%- set run = run_id_value() -%}
    {%- if not run -%}
        {{ return({}) }}
    {%- endif -%}
    {%- set result = run_query(
        "select model, output from audit.model_fingerprints where verified_run = '" ~ run ~ "'"
    ) -%}
    {%- set out = {} -%}
    {%- for row in result.rows -%}
        {%- do out.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}

{#- A kept table's digest was just taken: mark it as this run's (reusable_table_verified_this_run);
    after a restamp of its as_of columns, with the restamped table's digest (the run that built
    it stays the one that did). -#}
{% macro reusable_table_verified(restamped=none) -%}
    {%- set output = reusable_table_digest(this) if restamped else none -%}
    {%- do run_query(
        "update audit.model_fingerprints set verified_run = '" ~ run_id_value() ~ "'"
        ~ (", output = '" ~ output ~ "'" if output else "")
        ~ " where model = '" ~ model.unique_id ~ "'"
    ) -%}
    {%- do adapter.commit() -%}
{%- endmacro %}
