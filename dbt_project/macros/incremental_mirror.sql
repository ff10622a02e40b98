{#- Incremental mirrors of append-only raw tables (models/intermediate/activity): one row per
    primary key, its latest version, like the staging view of the same source, kept up to date
    by delete+insert of the keys that changed instead of ranking all of raw every night.

    Raw is append-only: a key's latest version can only change when a row of that key is
    published (ingestion stamps every published row with `_loaded_at`, its transaction's start;
    the warehouse has one writer at a time, so a later publish has a later stamp). The mirror keeps
    the stamp of each row's version; its largest is the watermark. An incremental build re-ranks
    every version of the keys that have a row stamped after the watermark (or none: a row written
    by hand) and delete+inserts those keys, and re-ranks the keys whose mirrored version raw no
    longer holds or that raw holds and the mirror does not (an erasure deleting some versions of
    a key). Keys taken out of raw altogether (erasure) go by the post-hook mirror_drop_removed. A raw whose newest stamp is older than the watermark (raw restored from a
    copy) re-ranks every key: a full rebuild inside the incremental run.

    The mirrors hold no as_of: a night at any as_of, earlier ones included, reads the same
    mirror a full refresh would build. docs/incremental.md. -#}

{#- `relation`, or only the rows of its keys changed since the mirror's watermark when the
    build is incremental (a subquery; aliased `mirror_source`). -#}
{% macro mirror_source(relation, key) -%}
    {%- if is_incremental() -%}
        {%- set append_only = mirror_unchanged_since_build(relation) -%}
        (
            select *
            from {{ relation }}
            where {{ key }} in (
                select changed.{{ key }}
                from {{ relation }} as changed
                cross join (
                    select max(_loaded_at) as watermark from {{ this }}
                ) as mirrored
                cross join (
                    select max(_loaded_at) as newest from {{ relation }}
                ) as published
                where
                    mirrored.watermark is null
                    or changed._loaded_at is null
                    or changed._loaded_at > mirrored.watermark
                    or published.newest < mirrored.watermark
                {%- if not append_only %}
                union all
                -- an erasure that deleted some of a key's versions (those carrying the person's
                -- identifier) leaves older ones in raw: the key's mirrored version is gone, or the
                -- erasure's sweep took the mirror's row; either way the key is ranked again
                select kept.{{ key }}
                from {{ this }} as kept
                where not exists (
                    select 1 from {{ relation }} as version
                    where version.{{ key }} = kept.{{ key }} and version._loaded_at = kept._loaded_at
                )
                union all
                select unmirrored.{{ key }}
                from {{ relation }} as unmirrored
                where not exists (
                    select 1 from {{ this }} as kept
                    where kept.{{ key }} = unmirrored.{{ key }}
                )
                {%- endif %}
            )
        ) as mirror_source
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: delete the mirror's keys that raw no longer holds (an erased person's rows) —
    none when raw lost no row since the last build —, then note raw's and the mirror's row
    counts and the watermark for the next build (mirror_unchanged_since_build). -#}
{% macro mirror_drop_removed(relation, key) -%}
    {%- if not (is_incremental() and mirror_raw_append_only(relation)) %}
    delete from {{ this }} as mirrored
    where not exists (
        select 1 from {{ relation }} as published
        where published.{{ key }} = mirrored.{{ key }}
    );
    {%- endif %}
    {#- audit.mirror_counts is created before the models (create_state_tables): two mirrors
        built side by side would race to create it (Postgres refuses the second) -#}
    delete from audit.mirror_counts where model = '{{ model.unique_id }}';
    insert into audit.mirror_counts
    select
        '{{ model.unique_id }}',
        (select count(*) from {{ relation }}),
        (select count(*) from {{ this }}),
        (select max(_loaded_at) from {{ this }})
{%- endmacro %}

{#- The counts the last build noted (audit.mirror_counts): none when there are none. -#}
{% macro mirror_counts_noted() -%}
    {%- if not execute or adapter.get_relation(database=this.database, schema='audit', identifier='mirror_counts') is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set result = run_query(
        "select raw_rows, mirror_rows, watermark from audit.mirror_counts where model = '"
        ~ model.unique_id ~ "'"
    ) -%}
    {{ return(result.rows[0] if result.rows | length else none) }}
{%- endmacro %}

{#- Raw lost no row since the mirror's last build: its rows are those counted then plus the
    rows stamped after that build's watermark (or without a stamp). Raw is append-only except
    for erasures, which delete; a deletion breaks the equation whatever was published since. -#}
{% macro mirror_raw_append_only(relation) -%}
    {%- set noted = mirror_counts_noted() -%}
    {%- if noted is none or noted[2] is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set result = run_query(
        "select count(*) - count(*) filter (where _loaded_at is null or _loaded_at > cast('"
        ~ noted[2] ~ "' as timestamp)) from " ~ relation
    ) -%}
    {{ return(result.rows[0][0] == noted[0]) }}
{%- endmacro %}

{#- Since the mirror's last build raw only gained rows and the mirror holds the rows that build
    left (its count, its watermark): then a key whose mirrored version raw no longer holds, or a
    key raw holds that the mirror lacks, can only be a key with a row stamped after the
    watermark, which mirror_source re-ranks anyway — the two searches over every key are
    skipped. An erasure (rows deleted from raw or swept from the mirror) or a hand edit of the
    row count makes the full search. -#}
{% macro mirror_unchanged_since_build(relation) -%}
    {%- set noted = mirror_counts_noted() -%}
    {%- if noted is none or noted[2] is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set result = run_query(
        "select count(*), max(_loaded_at) = cast('" ~ noted[2] ~ "' as timestamp) from " ~ this
    ) -%}
    {%- if result.rows[0][0] != noted[1] or not result.rows[0][1] -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(mirror_raw_append_only(relation)) }}
{%- endmacro %}
