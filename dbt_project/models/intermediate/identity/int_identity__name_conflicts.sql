{#- One row per (identifier value, record) where the value is shared by records whose first names
    are more than identity.name_max_edit_distance edits apart: a family inbox or a household phone.
    Such a value links only records whose first names agree (int_identity__edges); its plain
    value links are refused with reason first_name_conflict (int_identity__dropped_links).
    Applies to identifier types with require_matching_first_name in var('identity'). -#}
{{ config(
    materialized='reusable_table',
    meta={'reads_columns': {'int_identity__records': ['record_key', 'first_name']}},
) }}
{%- set identity_config = var("identity") -%}
{%- set guarded = [] -%}
{%- for type_name, settings in identity_config.get('identifiers', {}).items() if settings.get('require_matching_first_name') -%}
    {%- do guarded.append(type_name) -%}
{%- endfor -%}
{%- set max_distance = identity_config.get('name_max_edit_distance', 1) | int -%}
{#- values shared by more records than this are dropped by the per-value limit anyway; leaving
    them out keeps the pairwise comparison below bounded (junk values have thousands of records) -#}
{%- set limits = [2] -%}
{%- for type_name, settings in identity_config.get('identifiers', {}).items() if settings.get('max_records_per_value') -%}
    {%- do limits.append(settings['max_records_per_value'] | int) -%}
{%- endfor -%}
with guarded_links as (
    -- the links through a value of an identifier type that requires matching first names
    select
        node_key,
        identifier_type,
        identifier_value,
        record_key
    from {{ ref('int_identity__candidate_links') }}
    where identifier_type in (
        {%- for type_name in guarded %}'{{ type_name }}'{{ ', ' if not loop.last }}{% else %}''{% endfor -%}
    )
),

records as (
    select * from {{ ref('int_identity__records') }}
),

-- each distinct first name folded once (macros/fold.sql), joined back below
folded_first_names as {{ materialized_cte() }} (
    {{ folded_values('records', 'first_name') }}
),

value_records as (
    select
        guarded_links.*,
        nullif(folded_first_names.folded, '') as first_name_key
    from guarded_links
    inner join records on guarded_links.record_key = records.record_key
    left join folded_first_names on records.first_name = folded_first_names.value
),

small_values as (
    select node_key
    from value_records
    group by node_key
    having count(*) <= {{ limits | max }}
),

conflicted_values as (
    select distinct left_side.node_key
    from value_records as left_side
    inner join small_values on left_side.node_key = small_values.node_key
    inner join value_records as right_side
        on
            left_side.node_key = right_side.node_key
            and left_side.record_key < right_side.record_key
    where
        {{ edit_distance('left_side.first_name_key', 'right_side.first_name_key') }}
        > {{ max_distance }}
),

final as (
    select value_records.*
    from value_records
    inner join conflicted_values on value_records.node_key = conflicted_values.node_key
)

select * from final
