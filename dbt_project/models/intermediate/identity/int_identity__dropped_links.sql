{#- One row per candidate link that identity resolution refuses, with the reason: the value is
    on the junk blocklist (exact or regex), shared by more source records than its type allows
    (a shared in-store device), or shared by records whose first names disagree (a family inbox:
    first_name_conflict; such a value still links the records whose first names agree, see
    int_identity__edges), or, for types with require_matching_birth_date, shared by records with
    two birth dates that are not one typo apart (birth_date_conflict: two people, it links
    nobody; macro birth_dates_alike). Never a silent over-merge: every drop is here. -#}
{{ config(
    materialized='reusable_table',
    meta={'reads_columns': {'int_identity__records': ['record_key', 'date_of_birth']}},
) }}
{%- set identity_config = var("identity") -%}
with candidates as (
    select * from {{ ref('int_identity__candidate_links') }}
),

{% for entry in identity_config.get('blocklist', []) %}
blocked_{{ loop.index }} as (
    select
        record_key,
        node_key,
        {{ "'blocklist_regex'" if entry.get('regex') else "'blocklist_exact'" }} as drop_reason
    from candidates
    where
        identifier_type = '{{ entry["type"] }}'
        {%- if entry.get('regex') %}
            and {{ regex_full_match('identifier_value', entry['regex']) }}
        {%- else %}
            and identifier_value = '{{ entry["exact"] | replace("'", "''") }}'
        {%- endif %}
),

{% endfor %}
value_counts as (
    select
        node_key,
        identifier_type,
        count(distinct record_key) as records_sharing_value
    from candidates
    group by node_key, identifier_type
),

over_limit as (
    select
        candidates.record_key,
        candidates.node_key,
        'too_many_records_per_value' as drop_reason
    from candidates
    inner join value_counts on candidates.node_key = value_counts.node_key
    where
        {%- for type_name, settings in identity_config.get('identifiers', {}).items() if settings.get('max_records_per_value') %}
            {{ 'or ' if not loop.first }}(
                value_counts.identifier_type = '{{ type_name }}'
                and value_counts.records_sharing_value > {{ settings['max_records_per_value'] | int }}
            )
        {%- else %}
            false
        {%- endfor %}
),

value_birth_dates as (
    select distinct value_links.node_key, value_links.identifier_type, records.date_of_birth
    from candidates as value_links
    inner join {{ ref('int_identity__records') }} as records
        on value_links.record_key = records.record_key
    where
        records.date_of_birth is not null
        and value_links.identifier_type in (
            ''
            {%- for type_name, settings in identity_config.get('identifiers', {}).items() if settings.get('require_matching_birth_date') %}
                , '{{ type_name }}'
            {%- endfor %}
        )
),

birth_date_conflicts as (
    -- two birth dates that are not one typed apart (birth_dates_alike: one digit, two adjacent
    -- digits swapped, day and month swapped) are two people; a name_address key holds the given
    -- name, and two dates two digits apart under one given name are one person's (relatives of
    -- one given name are a generation apart: birth_dates_two_digits_apart)
    select
        candidates.record_key,
        candidates.node_key,
        'birth_date_conflict' as drop_reason
    from candidates
    where candidates.node_key in (
        select one.node_key
        from value_birth_dates as one
        inner join value_birth_dates as other
            on
                one.node_key = other.node_key
                and one.date_of_birth < other.date_of_birth
        where not (
            {{ birth_dates_alike('one.date_of_birth', 'other.date_of_birth') }}
            or (
                one.identifier_type = 'name_address'
                and {{ birth_dates_two_digits_apart('one.date_of_birth', 'other.date_of_birth') }}
            )
        )
    )
),

name_conflicts as (
    -- only where the value itself is fine: a blocked or over-limit value links nobody at all
    select
        name_conflicts.record_key,
        name_conflicts.node_key,
        'first_name_conflict' as drop_reason
    from {{ ref('int_identity__name_conflicts') }} as name_conflicts
    where not exists (
        select 1 from over_limit where over_limit.node_key = name_conflicts.node_key
    )
    {%- for entry in identity_config.get('blocklist', []) %}
        and not exists (
            select 1 from blocked_{{ loop.index }}
            where blocked_{{ loop.index }}.node_key = name_conflicts.node_key
        )
    {%- endfor %}
),

dropped as (
    {% for entry in identity_config.get('blocklist', []) %}
        select * from blocked_{{ loop.index }}
        union all
    {% endfor %}
    select * from over_limit
    union all
    select * from birth_date_conflicts
    union all
    select * from name_conflicts
),

-- A link refused for several reasons reports the one that refuses it whatever the others say:
-- a blocked value links nobody, nor does one over its limit; a birth-date conflict refuses the
-- value for everyone, a first-name conflict only between the records whose names disagree.
ranked as (
    select
        dropped.record_key,
        dropped.node_key,
        candidates.identifier_type,
        candidates.rule,
        dropped.drop_reason,
        row_number() over (
            partition by dropped.record_key, dropped.node_key, candidates.identifier_type, candidates.rule
            order by case dropped.drop_reason
                when 'blocklist_exact' then 1
                when 'blocklist_regex' then 2
                when 'too_many_records_per_value' then 3
                when 'birth_date_conflict' then 4
                else 5
            end
        ) as reason_rank
    from dropped
    inner join candidates
        on dropped.record_key = candidates.record_key and dropped.node_key = candidates.node_key
),

final as (
    select
        record_key,
        node_key,
        identifier_type,
        rule,
        drop_reason
    from ranked
    where reason_rank = 1
)

select * from final
