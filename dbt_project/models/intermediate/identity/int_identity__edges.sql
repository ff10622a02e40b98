{#- One row per accepted link: the deterministic links plus, when
    var('identity').probabilistic.enabled, the record pairs the Splink model scored at or above the
    threshold (source identity.probabilistic_links, written by the Python asset
    identity/probabilistic_links from this run's records), typed probabilistic with their
    match_probability. This is the graph connected components run on; probabilistic links rank
    last (an unlisted type) in the max_per_customer limits.

    A probabilistic link counts only if it was computed for this as_of and both its records are
    still records: a plain `dbt build` (no Dagster asset before it) never picks up stale pairs.
    Without the table (a warehouse that never ran the asset) there are none. -#}
{#- Kept across as_ofs (reusable_table) when the deterministic links, the records and the
    probabilistic pairs are those of its last build: identity/probabilistic_links replaces its
    table every night, so every row it holds carries the run's as_of and the filter below keeps
    them all (its digest leaves the as_of column out). -#}
{{ config(
    materialized='reusable_table',
    meta={
        'kept_across_as_of': [],
        'reads_columns': {'int_identity__records': ['record_key'], 'probabilistic_links': [
            'record_key', 'node_key', 'identifier_type', 'identifier_value', 'rule', 'match_probability',
        ]},
    },
) }}
{%- set probabilistic = var("identity").get('probabilistic') or {} -%}
{%- set links_source = source('identity', 'probabilistic_links') -%}
{%- set links_relation = none -%}
{%- if execute and probabilistic.get('enabled', false) -%}
    {%- set links_relation = adapter.get_relation(
        database=links_source.database, schema=links_source.schema, identifier=links_source.identifier
    ) -%}
{%- endif -%}
{%- set no_links = empty_relation([
    ('record_key', 'varchar'), ('node_key', 'varchar'), ('identifier_type', 'varchar'),
    ('identifier_value', 'varchar'), ('rule', 'varchar'), ('match_probability', 'double precision'),
    ('as_of', 'date')
]) -%}
with deterministic as (
    select
        record_key,
        node_key,
        identifier_type,
        identifier_value,
        rule,
        cast(null as {{ sql_type('double precision') }}) as match_probability
    from {{ ref('int_identity__deterministic_edges') }}
),

records as (
    select record_key from {{ ref('int_identity__records') }}
),

probabilistic_links as (
    select
        links.record_key,
        links.node_key,
        links.identifier_type,
        links.identifier_value,
        links.rule,
        links.match_probability
    from {{ links_source if links_relation is not none else no_links }} as links
    where links.as_of = {{ as_of_date() }}
),

probabilistic as (
    select probabilistic_links.*
    from probabilistic_links
    inner join records as left_record on probabilistic_links.record_key = left_record.record_key
    inner join records as right_record on probabilistic_links.node_key = right_record.record_key
),

final as (
    select * from deterministic
    union all
    select * from probabilistic
)

select * from final
