{#- Materialization `test` on DuckDB: a data test that passed on the same rows with the same SQL
    passes again without running (docs/incremental.md, *Tests of kept tables*).

    A test's result is a function of its compiled SQL, its severity settings and the rows of the
    relations it reads. A generic test (unique, not_null, accepted_values, relationships, the
    project's unique_combination) or a singular test with `meta.kept_with_inputs: true` (its SQL
    reads only its refs, and no clock) qualifies, unless its SQL names a clock or a random value.
    When every relation it reads is a `reusable_table` this run built or kept
    (its digest taken then: reusable_table_verified_this_run), the test's fingerprint is its code
    and those digests; `audit.test_passes` keeps, per test, the fingerprint of its last pass. The
    same fingerprint again (a quiet night: the identity chain kept) answers "0 failures" without
    scanning the tables; anything else runs the test as dbt does, and a pass is remembered, a warn
    or a failure forgets the last pass. A test reading any other relation, one storing its
    failures, a plain `dbt build` (no C360_DBT_CODE_DIGEST) and `--full-refresh` always run. -#}
{%- materialization test, adapter='duckdb' -%}
    {%- set fingerprint = kept_test_fingerprint() -%}
    {%- if fingerprint and kept_test_passed(fingerprint) -%}
        {{ log('c360 test kept: ' ~ model.unique_id ~ ' (passed on the same rows and SQL)', info=True) }}
        {%- call statement('main', fetch_result=True) -%}
            select 0 as failures, false as should_warn, false as should_error
        {%- endcall -%}
        {{ return({'relations': []}) }}
    {%- endif -%}
    {%- set result = materialization_test_default() -%}
    {%- if fingerprint -%}
        {%- set row = load_result('main').table.rows[0] -%}
        {%- do kept_test_remember(fingerprint, row[0] == 0 and not row[1] and not row[2]) -%}
    {%- endif -%}
    {{ return(result) }}
{%- endmaterialization -%}

{#- md5 of the test's code and its inputs' digests, or '' when it must run (see above). -#}
{% macro kept_test_fingerprint() -%}
    {%- set project = env_var('C360_DBT_CODE_DIGEST', '') -%}
    {%- if not project or should_full_refresh() or should_store_failures()
        or not model.depends_on.nodes -%}
        {{ return('') }}
    {%- endif -%}
    {#- only tests known to read nothing but their inputs: dbt's generic tests and the project's
        unique_combination, or a singular test that says so (meta.kept_with_inputs); and no
        clock or random value in the SQL (the same rows could give another answer tomorrow) -#}
    {%- set generic = model.test_metadata.name if model.test_metadata is defined and model.test_metadata else none -%}
    {%- set declared = (model.config.get('meta') or {}).get('kept_with_inputs') -%}
    {%- if not (generic in kept_test_generic_names() or declared is sameas true) -%}
        {{ return('') }}
    {%- endif -%}
    {%- if modules.re.search('(?i)\\b(now|today|current_[a-z_]+|get_current_[a-z_]+|random|uuid|gen_random_uuid)\\b', sql) -%}
        {{ return('') }}
    {%- endif -%}
    {%- for unique_id in model.depends_on.nodes -%}
        {%- set node = graph.nodes.get(unique_id) -%}
        {%- if node is none or node.config.materialized != 'reusable_table' -%}
            {{ return('') }}
        {%- endif -%}
    {%- endfor -%}
    {%- do reusable_table_ensure_store() -%}
    {%- set verified = reusable_table_verified_this_run() -%}
    {%- set digests = [] -%}
    {%- for unique_id in model.depends_on.nodes | sort -%}
        {%- if unique_id not in verified -%}
            {{ return('') }}
        {%- endif -%}
        {%- do digests.append(unique_id ~ '=' ~ verified[unique_id]) -%}
    {%- endfor -%}
    {%- set settings = [] -%}
    {%- for key in ['severity', 'fail_calc', 'warn_if', 'error_if', 'limit', 'where'] -%}
        {%- do settings.append(key ~ '=' ~ config.get(key)) -%}
    {%- endfor -%}
    {%- set parts = [project, model.unique_id, sql, settings | join(','), digests | join(';')] -%}
    {{ return(local_md5(parts | join('\x1f'))) }}
{%- endmacro %}

{#- audit.test_passes is made with the fingerprint store (reusable_table_ensure_store). -#}
{% macro kept_test_passed(fingerprint) -%}
    {%- set result = run_query(
        "select 1 from audit.test_passes where test = '" ~ model.unique_id
        ~ "' and fingerprint = '" ~ fingerprint ~ "'"
    ) -%}
    {{ return(result.rows | length > 0) }}
{%- endmacro %}

{#- After the test ran: remember a pass (with its fingerprint), forget one after a warn or error. -#}
{% macro kept_test_remember(fingerprint, passed) -%}
    {%- do run_query(
        "delete from audit.test_passes where test = '" ~ model.unique_id ~ "'"
        ~ (";
        insert into audit.test_passes (test, fingerprint, passed_run) values ('" ~ model.unique_id
        ~ "', '" ~ fingerprint ~ "', '" ~ run_id_value() ~ "')" if passed else "")
    ) -%}
    {%- do adapter.commit() -%}
{%- endmacro %}

{#- The generic tests whose SQL reads only the model (and, for relationships, its `to` model). -#}
{% macro kept_test_generic_names() -%}
    {{ return(['unique', 'not_null', 'accepted_values', 'relationships', 'unique_combination']) }}
{%- endmacro %}
