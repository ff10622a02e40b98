{#- Helpers the compiled segment SQL uses (orchestration/segments/compiler.py). -#}

{#- The local calendar date of a UTC timestamp in an IANA zone (null zone: UTC). timezone(zone,
    timestamp) reads a naive timestamp as local to the zone; timezone(zone, timestamptz) gives
    the zone's wall clock: the same two calls on DuckDB (ICU) and Postgres. -#}
{% macro local_date(utc_timestamp, time_zone) -%}
    {{ return(adapter.dispatch('local_date', 'c360')(utc_timestamp, time_zone)) }}
{%- endmacro %}

{% macro default__local_date(utc_timestamp, time_zone) -%}
    cast(timezone(coalesce({{ time_zone }}, 'UTC'), timezone('UTC', {{ utc_timestamp }})) as date)
{%- endmacro %}

{#- Spark: from_utc_timestamp shifts a UTC instant to the zone's wall clock (the session is UTC). -#}
{% macro spark__local_date(utc_timestamp, time_zone) -%}
    cast(from_utc_timestamp(cast({{ utc_timestamp }} as timestamp_ltz), coalesce({{ time_zone }}, 'UTC')) as date)
{%- endmacro %}

{#- A select of the customers behind one kind of source record, with their time zone, for
    localizing activity: one row per record of `source`/`entity` in customer_id_map (source_record_id,
    customer_id) with the customer's time_zone from customer_360. Shared by the int_segments models,
    so events and orders resolve to customers and local dates alike. -#}
{% macro resolved_customer_time_zones(source, entity) -%}
    select
        id_map.source_record_id,
        id_map.customer_id,
        customers.time_zone
    from {{ ref('customer_id_map') }} as id_map
    inner join {{ ref('customer_360') }} as customers on id_map.customer_id = customers.customer_id
    where id_map.source = '{{ source }}' and id_map.entity = '{{ entity }}'
{%- endmacro %}

{#- A top-level JSON property as text (keys are validated identifiers, never user SQL). -#}
{% macro json_text(json_column, key) -%}
    {{ return(adapter.dispatch('json_text', 'c360')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_text(json_column, key) -%}
    (cast({{ json_column }} as jsonb) ->> '{{ key }}')
{%- endmacro %}

{% macro spark__json_text(json_column, key) -%}
    get_json_object({{ json_column }}, '$.{{ key }}')
{%- endmacro %}

{% macro duckdb__json_text(json_column, key) -%}
    json_extract_string({{ json_column }}, '$.{{ key }}')
{%- endmacro %}

{#- A top-level JSON property as a number (null when it is not one). -#}
{% macro json_number(json_column, key) -%}
    {{ return(adapter.dispatch('json_number', 'c360')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_number(json_column, key) -%}
    case
        when {{ default__json_text(json_column, key) }} ~ '^-?[0-9]+([.][0-9]+)?$'
            then cast({{ default__json_text(json_column, key) }} as double precision)
    end
{%- endmacro %}

{% macro spark__json_number(json_column, key) -%}
    try_cast(get_json_object({{ json_column }}, '$.{{ key }}') as double)
{%- endmacro %}

{% macro duckdb__json_number(json_column, key) -%}
    try_cast(json_extract_string({{ json_column }}, '$.{{ key }}') as double)
{%- endmacro %}
