{#- Lower-cased, trimmed email; empty → null. -#}
{% macro normalize_email(col) -%}
    nullif(lower(trim({{ col }})), '')
{%- endmacro %}

{#- E.164 phone from free text and the record's country (foundation rules; identity issue moves to
    the phonenumbers library). Unknown shapes → null rather than a wrong number. -#}
{% macro phone_e164(col, country_col=none) -%}
    {%- set digits = "regexp_replace(coalesce(" ~ col ~ ", ''), '[^0-9]', '', 'g')" -%}
    {%- set country = country_col if country_col else "''" -%}
    case
        when length({{ digits }}) < 8 then null
        when trim({{ col }}) like '+%' then '+' || {{ digits }}
        when {{ digits }} like '00%' then '+' || substr({{ digits }}, 3)
        when {{ country }} = 'GB' and {{ digits }} like '0%' then '+44' || substr({{ digits }}, 2)
        when {{ country }} = 'DE' and {{ digits }} like '0%' then '+49' || substr({{ digits }}, 2)
        when {{ country }} = 'FR' and {{ digits }} like '0%' then '+33' || substr({{ digits }}, 2)
        when {{ country }} = 'NL' and {{ digits }} like '0%' then '+31' || substr({{ digits }}, 2)
        when length({{ digits }}) = 10 and {{ country }} in ('US', '') then '+1' || {{ digits }}
        when length({{ digits }}) = 11 and {{ digits }} like '1%' then '+' || {{ digits }}
    end
{%- endmacro %}

{#- Stable bucket 0..9999 from md5(text): identical in DuckDB, Postgres and Python
    (int(md5(text).hexdigest()[:8], 16) % 10000). -#}
{% macro hash_bucket(text_expr) -%}
    {{ return(adapter.dispatch('hash_bucket', 'c360')(text_expr)) }}
{%- endmacro %}

{% macro default__hash_bucket(text_expr) -%}
    (cast(('x' || substr(md5({{ text_expr }}), 1, 8)) as bit(32))::bigint & 4294967295) % 10000
{%- endmacro %}

{% macro duckdb__hash_bucket(text_expr) -%}
    (cast(('0x' || substr(md5({{ text_expr }}), 1, 8)) as ubigint) % 10000)
{%- endmacro %}

{#- Whole-value regex match, same semantics on every engine (patterns stay in the shared subset). -#}
{% macro regex_full_match(col, pattern) -%}
    {{ return(adapter.dispatch('regex_full_match', 'c360')(col, pattern)) }}
{%- endmacro %}

{% macro default__regex_full_match(col, pattern) -%}
    ({{ col }} ~ '^(?:{{ pattern | replace("'", "''") }})$')
{%- endmacro %}

{% macro duckdb__regex_full_match(col, pattern) -%}
    regexp_full_match({{ col }}, '{{ pattern | replace("'", "''") }}')
{%- endmacro %}

{#- A consent/suppression/erasure contact point in the same form identity uses. -#}
{% macro normalize_contact_point(type_col, value_col) -%}
    case
        when {{ type_col }} = 'email' then {{ normalize_email(value_col) }}
        else {{ phone_e164(value_col) }}
    end
{%- endmacro %}
