{#- SQL that differs between engines, one macro per difference, so one model text runs on DuckDB,
    Postgres and Spark. Type names: Spark has no bare `varchar` (it needs a length) and no
    `double precision`. -#}
{% macro sql_type(name) -%}
    {{ return(adapter.dispatch('sql_type', 'c360')(name)) }}
{%- endmacro %}

{#- A type as DuckDB and Postgres spell it ('varchar', 'double precision', 'date', ...). -#}
{% macro default__sql_type(name) -%}
    {{ return(name) }}
{%- endmacro %}

{% macro spark__sql_type(name) -%}
    {{ return({'varchar': 'string', 'double precision': 'double'}.get(name, name)) }}
{%- endmacro %}

{#- dbt's own casts (the typed empty select behind an enforced contract) on Spark: the contracts
    name types as DuckDB and Postgres spell them. -#}
{% macro spark__cast(field, type) -%}
    cast({{ field }} as {{ sql_type(type) }})
{%- endmacro %}

{#- `with x as materialized (...)`: a hint DuckDB and Postgres take (compute the CTE once) and
    Spark does not parse. -#}
{% macro materialized_cte() -%}
    {{ return(adapter.dispatch('materialized_cte', 'c360')()) }}
{%- endmacro %}

{% macro default__materialized_cte() -%}
    materialized
{%- endmacro %}

{% macro spark__materialized_cte() -%}
{%- endmacro %}

{#- The distinct values of a text column in ascending order joined by `separator` (an aggregate). -#}
{% macro sorted_distinct_join(column, separator) -%}
    {{ return(adapter.dispatch('sorted_distinct_join', 'c360')(column, separator)) }}
{%- endmacro %}

{% macro default__sorted_distinct_join(column, separator) -%}
    string_agg(distinct {{ column }}, {{ separator }} order by {{ column }})
{%- endmacro %}

{% macro spark__sorted_distinct_join(column, separator) -%}
    array_join(array_sort(collect_set({{ column }})), {{ separator }})
{%- endmacro %}

{#- True when the text `expr` is ASCII only (null for null): its bytes are its characters in
    UTF-8. A length comparison, no regex pass. -#}
{% macro is_ascii(expr) -%}
    {{ return(adapter.dispatch('is_ascii', 'c360')(expr)) }}
{%- endmacro %}

{% macro default__is_ascii(expr) -%}
    {{ return("octet_length(" ~ expr ~ ") = char_length(" ~ expr ~ ")") }}
{%- endmacro %}

{% macro duckdb__is_ascii(expr) -%}
    {{ return("strlen(" ~ expr ~ ") = length(" ~ expr ~ ")") }}
{%- endmacro %}

{#- Every match of the regex `pattern` in `expr` replaced (both arguments are SQL literals). -#}
{% macro replace_all(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('replace_all', 'c360')(expr, pattern, replacement)) }}
{%- endmacro %}

{% macro default__replace_all(expr, pattern, replacement) -%}
    {{ return("regexp_replace(" ~ expr ~ ", " ~ pattern ~ ", " ~ replacement ~ ", 'g')") }}
{%- endmacro %}

{% macro spark__replace_all(expr, pattern, replacement) -%}
    {{ return("regexp_replace(" ~ expr ~ ", " ~ pattern ~ ", " ~ replacement ~ ")") }}
{%- endmacro %}

{#- dbt-spark's dateadd goes through unix seconds and gives null on a timestamp without a time
    zone (the project's timestamps); Spark's own timestampadd keeps the type. -#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    timestampadd({{ datepart }}, {{ interval }}, {{ from_date_or_timestamp }})
{%- endmacro %}
