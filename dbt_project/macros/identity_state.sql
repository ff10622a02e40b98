{#- After int_identity__assignments is built: log new merges/splits, then record the assignments that
    are new or changed (last_seen_as_of: the as_of of the run that last wrote the row). -#}
{% macro persist_identity_assignments() -%}
{%- set sql -%}
    insert into audit.identity_merge_log (
        as_of, event, customer_id, other_customer_id, record_count,
        rule, identifier_type, identifier_value, via_record_key, run_id
    )
    select
        events.as_of,
        events.event,
        events.customer_id,
        events.other_customer_id,
        events.record_count,
        events.rule,
        events.identifier_type,
        events.identifier_value,
        events.via_record_key,
        events.run_id
    from {{ this.schema }}.{{ this.identifier }}__events as events
    where not exists (
        select 1 from audit.identity_merge_log as logged
        where
            logged.event = events.event
            and logged.customer_id = events.customer_id
            and logged.other_customer_id = events.other_customer_id
    );
    -- only rows whose id or dates moved are rewritten: most nights move few of millions
    delete from audit.identity_registry as registry
    where exists (
        select 1 from {{ this }} as assignments
        where
            assignments.record_key = registry.record_key
            and (
                assignments.customer_id <> registry.customer_id
                or assignments.first_assigned_as_of <> registry.first_assigned_as_of
                or registry.record_first_seen_as_of is null
                or assignments.record_first_seen_as_of <> registry.record_first_seen_as_of
            )
    );
    insert into audit.identity_registry (
        record_key, customer_id, first_assigned_as_of, last_seen_as_of, record_first_seen_as_of
    )
    select
        assignments.record_key,
        assignments.customer_id,
        assignments.first_assigned_as_of,
        assignments.as_of,
        assignments.record_first_seen_as_of
    from {{ this }} as assignments
    where not exists (
        select 1 from audit.identity_registry as registry
        where registry.record_key = assignments.record_key
    );
{%- endset -%}
    {{ return(run_statements(sql)) }}
{%- endmacro %}

{#- The merges and splits this run decided, as a side table of the assignments model, each with
    the link that explains it: for a merge, an accepted link joining a record of the retired id to
    a record outside it (the bridge); for a split, a refused link of a record of the split-off part
    (blocklist, limit, name conflict), else rule no_remaining_link. -#}
{% macro identity_events_table() -%}
{%- set sql -%}
    drop table if exists {{ this.schema }}.{{ this.identifier }}__events;
    create table {{ this.schema }}.{{ this.identifier }}__events as
    with labels as (
        -- every record's id before this run ('' for a record seen for the first time)
        select
            assignments.record_key,
            assignments.customer_id as current_id,
            coalesce(registry.customer_id, '') as previous_id
        from {{ this }} as assignments
        left join audit.identity_registry as registry
            on assignments.record_key = registry.record_key
    ),

    previous as (
        select
            previous_id,
            current_id,
            count(*) as record_count
        from labels
        where previous_id <> '' and previous_id <> current_id
        group by previous_id, current_id
    ),

    still_alive as (
        select distinct customer_id from {{ this }}
    ),

    events as (
        select
            previous.current_id as customer_id,
            previous.previous_id as other_customer_id,
            previous.record_count,
            case when still_alive.customer_id is null then 'merge' else 'split' end as event
        from previous
        left join still_alive on previous.previous_id = still_alive.customer_id
    ),

    -- Only links with an end among the records of the ids this run retired can explain a
    -- merge, and only refused links of the records split off an id can explain a split: the
    -- links and refusals below are those records' (a night without merges or splits reads none).
    merged_records as (
        select labels.record_key
        from labels
        inner join (
            select distinct other_customer_id from events where event = 'merge'
        ) as retired on labels.previous_id = retired.other_customer_id
    ),

    split_records as (
        select labels.record_key
        from labels
        inner join events
            on labels.current_id = events.customer_id and labels.previous_id = events.other_customer_id
        where events.event = 'split'
    ),

    all_edges as (
        -- the final graph: accepted links minus those a max_per_customer limit refused
        select * from {{ ref('int_identity__edges') }} as edges
        where not exists (
            select 1 from {{ ref('int_identity__limit_drops') }} as limit_drops
            where limit_drops.record_key = edges.record_key and limit_drops.node_key = edges.node_key
        )
    ),

    edges as (
        -- the links of merged_records: theirs, those naming one, and every link of a value one
        -- of them holds (edge_ends pairs the records of a value)
        select * from all_edges
        where
            record_key in (select record_key from merged_records)
            or node_key in (select record_key from merged_records)
            or node_key in (
                select value_edges.node_key from all_edges as value_edges
                where
                    value_edges.node_key like 'v|%'
                    and value_edges.record_key in (select record_key from merged_records)
            )
    ),

    refused as (
        select
            dropped.record_key,
            dropped.drop_reason,
            dropped.identifier_type,
            candidates.identifier_value
        from {{ ref('int_identity__dropped_links') }} as dropped
        inner join {{ ref('int_identity__candidate_links') }} as candidates
            on dropped.record_key = candidates.record_key and dropped.node_key = candidates.node_key
        where dropped.record_key in (select record_key from split_records)
        union all
        select
            record_key,
            drop_reason || ':' || exceeded_type,
            identifier_type,
            identifier_value
        from {{ ref('int_identity__limit_drops') }}
        where record_key in (select record_key from split_records)
    ),

    edge_ends as (
        -- the far record of each link: for a record-to-value link every other record of the
        -- value; for a record-to-record link its node (the second half lists every link, but a
        -- value node is no record, so edge_sides keeps only the record-to-record ones from it)
        select
            edges.record_key,
            edges.rule,
            edges.identifier_type,
            edges.identifier_value,
            other_edges.record_key as far_record_key
        from edges
        inner join edges as other_edges
            on edges.node_key = other_edges.node_key and edges.record_key <> other_edges.record_key
        where edges.node_key like 'v|%'
        union all
        select
            record_key,
            rule,
            identifier_type,
            identifier_value,
            node_key
        from edges
    ),

    edge_sides as (
        select
            edge_ends.record_key,
            edge_ends.rule,
            edge_ends.identifier_type,
            edge_ends.identifier_value,
            near.previous_id as near_id,
            far.previous_id as far_id
        from edge_ends
        inner join labels as near on edge_ends.record_key = near.record_key
        inner join labels as far on edge_ends.far_record_key = far.record_key
    ),

    bridges as (
        select
            events.customer_id,
            events.other_customer_id,
            min(edge_sides.rule || chr(31) || edge_sides.identifier_type || chr(31)
                || edge_sides.identifier_value || chr(31) || edge_sides.record_key) as bridge
        from events
        inner join edge_sides
            on
                (edge_sides.far_id = events.other_customer_id and edge_sides.near_id <> events.other_customer_id)
                or (edge_sides.near_id = events.other_customer_id and edge_sides.far_id <> events.other_customer_id)
        where events.event = 'merge'
        group by events.customer_id, events.other_customer_id
    ),

    refusals as (
        select
            events.customer_id,
            events.other_customer_id,
            min(refused.drop_reason || chr(31) || refused.identifier_type || chr(31)
                || coalesce(refused.identifier_value, '') || chr(31) || refused.record_key) as bridge
        from events
        inner join labels
            on labels.current_id = events.customer_id and labels.previous_id = events.other_customer_id
        inner join refused on labels.record_key = refused.record_key
        where events.event = 'split'
        group by events.customer_id, events.other_customer_id
    ),

    explained as (
        select
            events.*,
            coalesce(bridges.bridge, refusals.bridge, 'no_remaining_link' || chr(31) || chr(31) || chr(31)) as why
        from events
        left join bridges
            on events.customer_id = bridges.customer_id and events.other_customer_id = bridges.other_customer_id
        left join refusals
            on events.customer_id = refusals.customer_id and events.other_customer_id = refusals.other_customer_id
    )

    select
        {{ as_of_date() }} as as_of,
        event,
        customer_id,
        other_customer_id,
        record_count,
        split_part(why, chr(31), 1) as rule,
        nullif(split_part(why, chr(31), 2), '') as identifier_type,
        nullif(split_part(why, chr(31), 3), '') as identifier_value,
        nullif(split_part(why, chr(31), 4), '') as via_record_key,
        '{{ run_id_value() or invocation_id }}' as run_id
    from explained;
{%- endset -%}
    {{ return(run_statements(sql)) }}
{%- endmacro %}
