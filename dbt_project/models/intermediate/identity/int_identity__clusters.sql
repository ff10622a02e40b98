{#- One row per graph node (record or identifier) with its component key: the smallest node key
    of its connected component.

    The components are computed by the pre-hook build_identity_components, with
    build_connected_components (macros/connected_components.sql): root hooking plus pointer
    jumping, one statement per step, until no link crosses two labels, so the passes grow with
    the logarithm of the longest identifier chain.
    var identity_cc_max_passes only caps a runaway loop (the build fails, naming the var); the
    passes each run needed (and the nodes each touched) are kept in
    int_identity__clusters__cc_passes. On a later night the passes run over what changed: new
    links and nodes between the last build's components, and the components a removal reopened
    (macros/incremental_components.sql), with the same result. The model reads the links' two
    keys and the record keys only (meta.reads_columns: a change in another column keeps it). -#}
{{ config(
    materialized='reusable_table',
    meta={'reads_columns': {
        'int_identity__edges': ['record_key', 'node_key'], 'int_identity__records': ['record_key'],
    }},
    pre_hook="{{ build_identity_components(ref('int_identity__edges'), ref('int_identity__records'), var('identity_cc_max_passes')) }}",
    post_hook=[
        "drop table if exists {{ cc_scratch('keys') }}",
        "{{ remember_identity_graph(ref('int_identity__edges')) }}",
    ],
) }}

with final as (
    select
        node_key,
        component_key,
        node_key like 'r|%' as is_record
    from {{ cc_scratch('keys') }}
)

select * from final
