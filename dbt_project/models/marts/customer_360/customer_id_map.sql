{#- One row per identity-bearing source record → its customer_id at as_of. customer_id is
    derived from the component's smallest record key (persistence registry: identity issue). -#}
with records as (
    select * from {{ ref('int_identity__records') }}
),

clusters as (
    select * from {{ ref('int_identity__clusters') }}
    where is_record
),

final as (
    select
        records.source,
        records.entity,
        records.source_record_id,
        records.record_key,
        'c_' || substr(md5(clusters.component_key), 1, 16) as customer_id,
        {{ as_of_date() }} as as_of
    from records
    inner join clusters on records.record_key = clusters.node_key
)

select * from final
