{#- After segment_membership is built for as_of D: one history row per stay of a customer in a
    segment (entered_as_of, exited_as_of: the first as_of it was no longer in; null while in).
    Idempotent for a rerun of D: what a previous run of D wrote is undone first. History moves
    forward: run dates in order (a backfill of an earlier date is not merged in). Then the
    per-segment stats of D (members, entered, exited, holdout), one row per shipped segment. -#}
{% macro persist_segment_history(segment_names) -%}
{%- set sql -%}
    delete from audit.segment_membership_history where entered_as_of = {{ as_of_date() }};
    update audit.segment_membership_history set exited_as_of = null
    where exited_as_of = {{ as_of_date() }};
    update audit.segment_membership_history set exited_as_of = {{ as_of_date() }}
    where
        exited_as_of is null
        and not exists (
            select 1 from {{ this }} as membership
            where
                membership.customer_id = segment_membership_history.customer_id
                and membership.segment_name = segment_membership_history.segment_name
        );
    insert into audit.segment_membership_history (
        customer_id, segment_name, entered_as_of, exited_as_of, is_holdout
    )
    select
        membership.customer_id,
        membership.segment_name,
        {{ as_of_date() }},
        null,
        membership.is_holdout
    from {{ this }} as membership
    where not exists (
        select 1 from audit.segment_membership_history as history
        where
            history.exited_as_of is null
            and history.customer_id = membership.customer_id
            and history.segment_name = membership.segment_name
    );
    delete from audit.segment_stats where as_of = {{ as_of_date() }};
    insert into audit.segment_stats (as_of, segment_name, members, entered, exited, holdout)
    select
        {{ as_of_date() }},
        names.segment_name,
        coalesce(members.members, 0),
        coalesce(moves.entered, 0),
        coalesce(moves.exited, 0),
        coalesce(members.holdout, 0)
    from (
        {%- for name in segment_names %}
            select '{{ name }}' as segment_name {{ 'union all' if not loop.last }}
        {%- else %}
            select cast(null as {{ sql_type('varchar') }}) as segment_name where false
        {%- endfor %}
    ) as names
    left join (
        select
            segment_name,
            count(*) as members,
            sum(case when is_holdout then 1 else 0 end) as holdout
        from {{ this }}
        group by segment_name
    ) as members on names.segment_name = members.segment_name
    left join (
        select
            segment_name,
            sum(case when entered_as_of = {{ as_of_date() }} then 1 else 0 end) as entered,
            sum(case when exited_as_of = {{ as_of_date() }} then 1 else 0 end) as exited
        from audit.segment_membership_history
        group by segment_name
    ) as moves on names.segment_name = moves.segment_name;
{%- endset -%}
    {{ return(run_statements(sql)) }}
{%- endmacro %}
