{#- One row per identity-bearing source record → its persistent customer_id at as_of
    (int_identity__assignments: kept across runs, merges keep the oldest id). -#}
{#- Kept across as_ofs (reusable_table) while the records and their ids are those of its last
    build; its as_of column is set to the run's. -#}
{{ config(
    materialized='reusable_table',
    meta={
        'kept_across_as_of': ['as_of'],
        'reads_columns': {
            'int_identity__assignments': ['record_key', 'customer_id'],
            'int_identity__records': ['record_key', 'source', 'entity', 'source_record_id'],
        },
    },
) }}
with records as (
    select
        record_key,
        source,
        entity,
        source_record_id
    from {{ ref('int_identity__records') }}
),

assignments as (
    select
        record_key,
        customer_id
    from {{ ref('int_identity__assignments') }}
),

final as (
    select
        records.source,
        records.entity,
        records.source_record_id,
        records.record_key,
        assignments.customer_id,
        {{ as_of_date() }} as as_of
    from records
    inner join assignments on records.record_key = assignments.record_key
)

select * from final
