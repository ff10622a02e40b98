{#- Raw is append-only: keep the newest version of each key (ties: latest batch load). -#}
{% macro latest_version(relation, key, order_by) -%}
    select *
    from (
        select
            *,
            row_number() over (
                partition by {{ key }}
                order by {{ order_by }} desc, _loaded_at desc, _batch_id desc
            ) as version_rank
        from {{ relation }}
    ) as versions
    where version_rank = 1
{%- endmacro %}
