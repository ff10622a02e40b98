{#- The statements of a hook or state macro (`;`-separated), as the engine runs them.

    DuckDB and Postgres take the text as one multi-statement command. Spark takes one statement
    per call, and its Parquet tables have no row-level DELETE or UPDATE (that needs a table format
    such as Delta or Iceberg, whose jars come from Maven): each statement runs on its own, and a
    `delete from T where P` or `update T set c = v where P` rewrites T (a new table from a select
    of the rows kept or changed, then drop and rename). The state these statements keep (build
    log, identity registry and merge log, segment history) is small beside the marts, so a
    rewrite costs what one scan of it costs. `varchar` in a `create table` becomes `string`, and
    `add column if not exists` checks the table's columns first. -#}
{% macro run_statements(sql) -%}
    {{ return(adapter.dispatch('run_statements', 'c360')(sql)) }}
{%- endmacro %}

{% macro default__run_statements(sql) -%}
    {{ return(sql) }}
{%- endmacro %}

{% macro spark__run_statements(sql) -%}
    {%- if execute -%}
        {#- line comments go first: they may hold a `;` (the macros put none in string literals) -#}
        {%- for statement in modules.re.sub('--[^\n]*', '', sql).split(';') if statement.strip() -%}
            {%- do _spark_statement(statement.strip()) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return('select 1') }}
{%- endmacro %}

{% macro _spark_statement(statement) -%}
    {%- set re = modules.re -%}
    {%- set flags = re.IGNORECASE + re.DOTALL -%}
    {%- set delete = re.match('^\s*delete\s+from\s+(\S+)(\s+as\s+\w+)?\s+where\s+(.*)$', statement, flags) -%}
    {%- set update = re.match('^\s*update\s+(\S+)\s+set\s+(\w+)\s*=\s*(.+?)\s+where\s+(.*)$', statement, flags) -%}
    {%- set add_column = re.match('^\s*alter\s+table\s+(\S+)\s+add\s+column\s+if\s+not\s+exists\s+(\w+)\s+(.+)$', statement, flags) -%}
    {%- if delete -%}
        {%- set table = delete.group(1) -%}
        {%- do _spark_rewrite(table,
            'select * from ' ~ table ~ (delete.group(2) or '')
            ~ ' where not coalesce((' ~ delete.group(3) ~ '), false)') -%}
    {%- elif update -%}
        {%- set table, target, value, condition = update.group(1), update.group(2), update.group(3), update.group(4) -%}
        {%- set columns = [] -%}
        {%- for column in _spark_columns(table) -%}
            {%- if column | lower == target | lower -%}
                {%- do columns.append('case when coalesce((' ~ condition ~ '), false) then ' ~ value
                    ~ ' else ' ~ column ~ ' end as ' ~ column) -%}
            {%- else -%}
                {%- do columns.append(column) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do _spark_rewrite(table, 'select ' ~ columns | join(', ') ~ ' from ' ~ table) -%}
    {%- elif add_column -%}
        {%- if add_column.group(2) | lower not in _spark_columns(add_column.group(1)) | map('lower') | list -%}
            {%- do run_query('alter table ' ~ add_column.group(1) ~ ' add columns ('
                ~ add_column.group(2) ~ ' ' ~ re.sub('(?i)\\bvarchar\\b', 'string', add_column.group(3)) ~ ')') -%}
        {%- endif -%}
    {%- elif re.match('^\s*create\s+table\s+(if\s+not\s+exists\s+)?\S+\s*\(', statement, flags) -%}
        {%- do run_query(re.sub('(?i)\\bvarchar\\b', 'string', statement)) -%}
    {%- else -%}
        {%- do run_query(statement) -%}
    {%- endif -%}
{%- endmacro %}

{% macro _spark_columns(table) -%}
    {%- set schema, identifier = table.split('.')[-2:] -%}
    {%- set relation = api.Relation.create(schema=schema, identifier=identifier) -%}
    {{ return(adapter.get_columns_in_relation(relation) | map(attribute='name') | list) }}
{%- endmacro %}

{% macro _spark_rewrite(table, select_sql) -%}
    {%- do run_query('drop table if exists ' ~ table ~ '__rewrite') -%}
    {%- do run_query('create table ' ~ table ~ '__rewrite as ' ~ select_sql) -%}
    {%- do run_query('drop table ' ~ table) -%}
    {%- do run_query('alter table ' ~ table ~ '__rewrite rename to ' ~ table) -%}
{%- endmacro %}

{#- What a macro's scratch tables are created as: session-scoped temporary tables, or, on Spark
    (whose temporary objects are views, recomputed on every read), plain tables in the session's
    current schema that the macro drops when done. -#}
{% macro temporary_table() -%}
    {{ return(adapter.dispatch('temporary_table', 'c360')()) }}
{%- endmacro %}

{% macro default__temporary_table() -%}
    {{ return('temporary table') }}
{%- endmacro %}

{% macro spark__temporary_table() -%}
    {{ return('table') }}
{%- endmacro %}
