{#- State dbt must never drop: the customer_id registry and the merge log live in plain tables
    created here (on-run-start), not in models, so `dbt build --full-refresh` cannot rebuild them. -#}
{% macro create_identity_state() -%}
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
{%- endmacro %}

{#- After int_identity__assignments is built: log new merges/splits, then record every assignment. -#}
{% macro persist_identity_assignments() -%}
    insert into audit.identity_merge_log
    select
        events.as_of,
        events.event,
        events.customer_id,
        events.other_customer_id,
        events.record_count
    from {{ this.schema }}.{{ this.identifier }}__events as events
    where not exists (
        select 1 from audit.identity_merge_log as logged
        where
            logged.event = events.event
            and logged.customer_id = events.customer_id
            and logged.other_customer_id = events.other_customer_id
    );
    delete from audit.identity_registry
    where record_key in (select assignments.record_key from {{ this }} as assignments);
    insert into audit.identity_registry (
        record_key, customer_id, first_assigned_as_of, last_seen_as_of, record_first_seen_as_of
    )
    select
        record_key,
        customer_id,
        first_assigned_as_of,
        as_of,
        record_first_seen_as_of
    from {{ this }};
{%- endmacro %}

{#- The merges and splits this run decided, as a side table of the assignments model. -#}
{% macro identity_events_table() -%}
    drop table if exists {{ this.schema }}.{{ this.identifier }}__events;
    create table {{ this.schema }}.{{ this.identifier }}__events as
    with previous as (
        select
            registry.customer_id as previous_id,
            assignments.customer_id as current_id,
            count(*) as record_count
        from {{ this }} as assignments
        inner join audit.identity_registry as registry
            on assignments.record_key = registry.record_key
        where registry.customer_id <> assignments.customer_id
        group by registry.customer_id, assignments.customer_id
    ),

    still_alive as (
        select distinct customer_id from {{ this }}
    )

    select
        {{ as_of_date() }} as as_of,
        case when still_alive.customer_id is null then 'merge' else 'split' end as event,
        previous.current_id as customer_id,
        previous.previous_id as other_customer_id,
        previous.record_count
    from previous
    left join still_alive on previous.previous_id = still_alive.customer_id;
{%- endmacro %}
