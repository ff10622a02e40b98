{#- Lower-cased, trimmed email; empty → null. -#}
{% macro normalize_email(col) -%}
    nullif(lower(trim({{ col }})), '')
{%- endmacro %}

{#- E.164 phone of a raw phone text, looked up in reference.phone_numbers (filled by the Python
    asset reference/phone_numbers with libphonenumber; see orchestration/identity/phones.py).
    region_col: the record's country, if the source has one (else the configured default region).
    Null when the text cannot be a phone number (the reason is in the lookup table). -#}
{% macro phone_e164(col, region_col=none) -%}
    (
        select phone_numbers.e164
        from {{ source('reference', 'phone_numbers') }} as phone_numbers
        where
            phone_numbers.raw_text = {{ col }}
            and phone_numbers.region = {% if region_col %}coalesce(upper(trim({{ region_col }})), ''){% else %}''{% endif %}
    )
{%- endmacro %}

{#- Stable bucket 0..9999 from md5(text): identical in DuckDB, Postgres and Python
    (int(md5(text).hexdigest()[:8], 16) % 10000). -#}
{% macro hash_bucket(text_expr) -%}
    {{ return(adapter.dispatch('hash_bucket', 'c360')(text_expr)) }}
{%- endmacro %}

{% macro default__hash_bucket(text_expr) -%}
    (cast(('x' || substr(md5({{ text_expr }}), 1, 8)) as bit(32))::bigint & 4294967295) % 10000
{%- endmacro %}

{% macro spark__hash_bucket(text_expr) -%}
    (cast(conv(substr(md5({{ text_expr }}), 1, 8), 16, 10) as bigint) % 10000)
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

{#- Spark's literals escape with a backslash (a doubled quote would end the literal). -#}
{% macro spark__regex_full_match(col, pattern) -%}
    regexp_like({{ col }}, '^(?:{{ pattern | replace("\\", "\\\\") | replace("'", "\\'") }})$')
{%- endmacro %}

{% macro duckdb__regex_full_match(col, pattern) -%}
    regexp_full_match({{ col }}, '{{ pattern | replace("'", "''") }}')
{%- endmacro %}

{#- Match key of a person at a postal address from its four parts, each already folded with
    fold_key (macros/fold.sql: accents, ligatures, full-width forms and case folded, everything
    but letters and digits removed, so 'Müller' = 'MULLER' and '12 OAK AVE.' = '12 Oak  Ave'),
    joined with '|'. Null when any part is missing or folds to nothing (a name in a script the
    fold does not cover): a partial key (a name alone, a street alone) is not evidence. -#}
{% macro name_address_key(first_name, last_name, address_line1, postal_code) -%}
    case
        when
            {{ first_name }} <> '' and {{ last_name }} <> ''
            and {{ address_line1 }} <> '' and {{ postal_code }} <> ''
            then {{ first_name }} || '|' || {{ last_name }} || '|' || {{ address_line1 }} || '|' || {{ postal_code }}
    end
{%- endmacro %}

{#- A consent/suppression/erasure contact point in the same form identity uses. -#}
{% macro normalize_contact_point(type_col, value_col) -%}
    case
        when {{ type_col }} = 'email' then {{ normalize_email(value_col) }}
        else {{ phone_e164(value_col) }}
    end
{%- endmacro %}
