{#- Materialization `test` on DuckDB: a data test that passed on the same rows with the same SQL
    passes again without running (docs/incremental.md, *Tests of kept tables*).

    A test's result is a function of its compiled SQL, its severity settings and the rows of the
    relations it reads. When every relation it reads is a `reusable_table` this run built or kept
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

{% macro kept_test_passed(fingerprint) -%}
    {%- do run_query(
        'create schema if not exists audit;
        create table if not exists audit.test_passes (
            test varchar primary key, fingerprint varchar not null, passed_run varchar not null
        )'
    ) -%}
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
