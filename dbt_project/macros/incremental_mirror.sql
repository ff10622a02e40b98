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
            )
        ) as mirror_source
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: delete the mirror's keys that raw no longer holds (an erased person's rows). -#}
{% macro mirror_drop_removed(relation, key) -%}
    delete from {{ this }} as mirrored
    where not exists (
        select 1 from {{ relation }} as published
        where published.{{ key }} = mirrored.{{ key }}
    )
{%- endmacro %}
