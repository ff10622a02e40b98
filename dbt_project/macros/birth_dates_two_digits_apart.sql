{#- True when two birth dates differ in exactly two digits of the ISO date (two typos: 1971-06-20
    and 1971-08-26). The name-and-address key's birth-date guard takes such dates as one
    person's: its key holds the given name, and relatives of one given name — a parent and a
    child — are a generation apart, which two digits reach only when day and month agree too
    (the probabilistic household guard's rule, docs/identity.md). Plain SQL on DuckDB and
    Postgres (`cast(date as varchar)` is the ISO text on both). -#}
{% macro birth_dates_two_digits_apart(a, b) -%}
{%- set x = "cast(" ~ a ~ " as " ~ sql_type('varchar') ~ ")" -%}
{%- set y = "cast(" ~ b ~ " as " ~ sql_type('varchar') ~ ")" -%}
(
    {%- for i in range(1, 11) %}
    {% if not loop.first %}+ {% endif %}case when substr({{ x }}, {{ i }}, 1) <> substr({{ y }}, {{ i }}, 1) then 1 else 0 end
    {%- endfor %}
) = 2
{%- endmacro %}
