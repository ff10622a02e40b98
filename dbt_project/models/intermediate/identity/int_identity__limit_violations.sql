{#- One row per component (before limits) and identifier type whose count passes that type's
    max_per_customer (counting only those seen within_days of as_of, where set): the merges
    int_identity__limit_drops undoes. Usually empty. -#}
with labelled as (
    select
        component_key as label,
        node_key
    from {{ ref('int_identity__node_types') }}
),

violations as (
    {{ identity_limit_violations_sql('labelled', ref('int_identity__node_types')) }}
),

final as (
    select
        label as component_key,
        identifier_type,
        identifiers,
        max_per_customer
    from violations
)

select * from final
