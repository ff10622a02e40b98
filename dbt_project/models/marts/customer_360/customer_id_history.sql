{#- One row per customer_id a merge retired → the customer_id that carries its records now
    (followed through chains of merge_events), with when and why it was retired. Activation reads it to
    remove or alias retired ids at the platforms. Source: audit.identity_merge_log. -#}
-- depends_on: {{ ref('int_identity__assignments') }}
with recursive merge_events as (
    select
        other_customer_id as retired_customer_id,
        customer_id as merged_into_customer_id,
        as_of as retired_as_of,
        rule,
        identifier_type,
        run_id
    from {{ source('identity_state', 'identity_merge_log') }}
    where event = 'merge' and as_of <= {{ as_of_date() }}
),

-- an id merged into one that was merged later ends at the id alive now
resolved as (
    select
        retired_customer_id,
        merged_into_customer_id as current_customer_id,
        1 as hops
    from merge_events
    union all
    select
        resolved.retired_customer_id,
        merge_events.merged_into_customer_id as current_customer_id,
        resolved.hops + 1 as hops
    from resolved
    inner join merge_events on resolved.current_customer_id = merge_events.retired_customer_id
    where resolved.hops < 100
),

latest as (
    select
        retired_customer_id,
        current_customer_id,
        hops,
        row_number() over (partition by retired_customer_id order by hops desc) as rank_by_depth
    from resolved
),

final as (
    select
        latest.retired_customer_id,
        latest.current_customer_id,
        latest.hops as merge_hops,
        merge_events.retired_as_of,
        merge_events.rule as retired_by_rule,
        merge_events.identifier_type as retired_by_identifier_type,
        merge_events.run_id as retired_in_run_id
    from latest
    inner join merge_events on latest.retired_customer_id = merge_events.retired_customer_id
    where latest.rank_by_depth = 1
)

select * from final
