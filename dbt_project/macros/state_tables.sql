{#- State dbt must never drop: plain tables created here (on-run-start), not by models, so
    `dbt build --full-refresh` cannot rebuild them. Identity: the customer_id registry and the
    merge log, written by the post-hook of int_identity__assignments (macros/identity_state.sql).
    Segments: the membership history and per-run stats, written by the post-hook of
    segment_membership (macros/segment_state.sql). -#}
{% macro create_state_tables() -%}
{%- set sql -%}
    create schema if not exists audit;
    create table if not exists audit.identity_registry (
        record_key varchar not null,
        customer_id varchar not null,
        first_assigned_as_of date not null,
        last_seen_as_of date not null
    );
    alter table audit.identity_registry add column if not exists record_first_seen_as_of date;
    create table if not exists audit.identity_merge_log (
        as_of date not null,
        event varchar not null,
        customer_id varchar not null,
        other_customer_id varchar not null,
        record_count bigint not null
    );
    -- why: the link that bridged a merge, or the refused link behind a split, and the run
    alter table audit.identity_merge_log add column if not exists rule varchar;
    alter table audit.identity_merge_log add column if not exists identifier_type varchar;
    alter table audit.identity_merge_log add column if not exists identifier_value varchar;
    alter table audit.identity_merge_log add column if not exists via_record_key varchar;
    alter table audit.identity_merge_log add column if not exists run_id varchar;
    create table if not exists audit.segment_membership_history (
        customer_id varchar not null,
        segment_name varchar not null,
        entered_as_of date not null,
        exited_as_of date,
        is_holdout boolean not null
    );
    create table if not exists audit.segment_stats (
        as_of date not null,
        segment_name varchar not null,
        members bigint not null,
        entered bigint not null,
        exited bigint not null,
        holdout bigint not null
    );
    {%- if target.type != 'spark' %}
    -- the incremental mirrors' counts at their last build (macros/incremental_mirror.sql: on
    -- Spark a mirror is a table rebuilt from raw)
    create table if not exists audit.mirror_counts (
        model varchar primary key, raw_rows bigint, mirror_rows bigint, watermark timestamp
    );
    {%- endif %}
{%- endset -%}
    {{ return(run_statements(sql)) }}
{%- endmacro %}
