{#- An incremental mirror's model (models/intermediate/activity): the rows of one source's
    staging view, with the same `columns` (macros/staging_columns.sql), plus each version's load
    stamp `_loaded_at`. Configured here for all mirrors alike: delete+insert of the keys with a
    version published since the last build (mirror_source), then a post-hook that drops the keys
    raw no longer holds (mirror_drop_removed); macros/incremental_mirror.sql, docs/incremental.md.
    The model itself declares `-- depends_on` its staging view, so it builds after the erasure step. -#}
{% macro activity_mirror(source_name, table_name, key, order_by, columns) -%}
    {#- Spark's Parquet tables cannot delete+insert (no row-level DELETE without Delta or Iceberg):
        there a mirror is a table rebuilt from raw every run, the same rows a full refresh gives. -#}
    {%- if target.type == 'spark' -%}
    {{- config(materialized='table') -}}
    {%- else -%}
    {{- config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=key,
        on_schema_change='fail',
        post_hook="{{ mirror_drop_removed(source('" ~ source_name ~ "', '" ~ table_name ~ "'), '"
            ~ key ~ "') }}",
    ) -}}
    {%- endif -%}
    {{ staged(mirror_source(source(source_name, table_name), key), key, order_by, columns, ['_loaded_at']) }}
{%- endmacro %}
