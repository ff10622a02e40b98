{#- One row per record with its persistent customer_id at as_of.

    Rules: a record keeps the id the registry gave it; a component whose records carry several
    ids (a bridging record merged them) keeps the OLDEST id (first assigned; on the same day an id
    not minted by a split; then smallest); an id
    whose records now fall into several components (a split) stays with the part holding its
    oldest record (then the most records); any other component gets a new id, never one the
    registry has given before. Merges and splits are written to
    audit.identity_merge_log by the post-hook, the assignments to audit.identity_registry. -#}
{#- Kept across as_ofs (reusable_table, meta.kept_across_as_of): with the components, the
    registry and the merge log those of the last build — taken after its hooks wrote them —, every
    component's records hold the ids the registry gave them, nothing is minted and the hooks would
    write nothing: the table differs only in its as_of column. -#}
{{ config(
    materialized='reusable_table',
    meta={'kept_across_as_of': ['as_of']},
    post_hook=["{{ identity_events_table() }}", "{{ persist_identity_assignments() }}"],
) }}
with clusters as (
    select
        node_key as record_key,
        component_key
    from {{ ref('int_identity__components') }}
    where is_record
),

registry as (
    select * from {{ source('identity_state', 'identity_registry') }}
),

known as (
    select
        clusters.component_key,
        registry.customer_id,
        registry.first_assigned_as_of,
        coalesce(registry.record_first_seen_as_of, registry.first_assigned_as_of) as record_first_seen_as_of
    from clusters
    inner join registry on clusters.record_key = registry.record_key
),

component_ids as (
    select
        component_key,
        customer_id,
        min(first_assigned_as_of) as first_assigned_as_of,
        min(record_first_seen_as_of) as oldest_record_as_of,
        count(*) as record_count
    from known
    group by component_key, customer_id
),

owners as (
    -- a split id stays with the part holding its oldest record, then the most records
    select
        customer_id,
        component_key,
        row_number() over (
            partition by customer_id
            order by oldest_record_as_of asc, record_count desc, component_key asc
        ) as owner_rank
    from component_ids
),

eligible as (
    select component_ids.*
    from component_ids
    inner join owners
        on
            component_ids.customer_id = owners.customer_id
            and component_ids.component_key = owners.component_key
            and owners.owner_rank = 1
),

split_off_ids as (
    -- ids minted for a part split off another id: younger than that id even on the same as_of
    select distinct customer_id
    from {{ source('identity_state', 'identity_merge_log') }}
    where event = 'split'
),

survivors as (
    select
        eligible.component_key,
        eligible.customer_id,
        eligible.first_assigned_as_of,
        row_number() over (
            partition by eligible.component_key
            order by
                eligible.first_assigned_as_of asc,
                split_off_ids.customer_id is not null asc,
                eligible.customer_id asc
        ) as survivor_rank
    from eligible
    left join split_off_ids on eligible.customer_id = split_off_ids.customer_id
),

known_ids as (
    -- a part split off an id mints a new one salted with the ids its records had, so it can
    -- never get back the id its component key minted before (a rerun at the same as_of); only
    -- components left without a surviving id mint one
    select
        known.component_key,
        {{ sorted_distinct_join('known.customer_id', "','") }} as previous_ids
    from known
    left join survivors
        on known.component_key = survivors.component_key and survivors.survivor_rank = 1
    where survivors.component_key is null
    group by known.component_key
),

final as (
    select
        clusters.record_key,
        clusters.component_key,
        coalesce(
            survivors.customer_id,
            'c_' || substr(md5(
                clusters.component_key
                || ':' || coalesce(known_ids.previous_ids, '')
                || ':' || '{{ as_of_value() }}'
            ), 1, 16)
        ) as customer_id,
        coalesce(survivors.first_assigned_as_of, {{ as_of_date() }}) as first_assigned_as_of,
        coalesce(
            registry.record_first_seen_as_of, registry.first_assigned_as_of, {{ as_of_date() }}
        ) as record_first_seen_as_of,
        {{ as_of_date() }} as as_of
    from clusters
    left join survivors
        on clusters.component_key = survivors.component_key and survivors.survivor_rank = 1
    left join known_ids on clusters.component_key = known_ids.component_key
    left join registry on clusters.record_key = registry.record_key
)

select * from final
