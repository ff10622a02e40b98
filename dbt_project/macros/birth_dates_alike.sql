{#- True when two birth dates are one person's as typed: equal, one digit of the ISO date
    different, two adjacent digits swapped, or day and month swapped (the probabilistic model's
    `date` levels). The birth-date guard of a name-and-address key refuses a value only when its
    records carry two dates that are not alike: a parent and a child of one name at one address
    are years apart (several digits), a typo is one. Plain SQL on DuckDB and Postgres
    (`cast(date as varchar)` is the ISO text on both). -#}
{% macro birth_dates_alike(a, b) -%}
{%- set x = "cast(" ~ a ~ " as " ~ sql_type('varchar') ~ ")" -%}
{%- set y = "cast(" ~ b ~ " as " ~ sql_type('varchar') ~ ")" -%}
(
    {{ a }} = {{ b }}
    or (
        {%- for i in range(1, 11) %}
        {% if not loop.first %}+ {% endif %}case when substr({{ x }}, {{ i }}, 1) <> substr({{ y }}, {{ i }}, 1) then 1 else 0 end
        {%- endfor %}
    ) = 1
    {%- for i in range(1, 10) %}
    or (
        substr({{ x }}, 1, {{ i - 1 }}) = substr({{ y }}, 1, {{ i - 1 }})
        and substr({{ x }}, {{ i + 2 }}) = substr({{ y }}, {{ i + 2 }})
        and substr({{ x }}, {{ i }}, 1) = substr({{ y }}, {{ i + 1 }}, 1)
        and substr({{ x }}, {{ i + 1 }}, 1) = substr({{ y }}, {{ i }}, 1)
    )
    {%- endfor %}
    or (
        substr({{ x }}, 1, 4) = substr({{ y }}, 1, 4)
        and substr({{ x }}, 6, 2) = substr({{ y }}, 9, 2)
        and substr({{ x }}, 9, 2) = substr({{ y }}, 6, 2)
    )
)
{%- endmacro %}
