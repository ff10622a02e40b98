{#- The attributes of an identity record (int_identity__records) in column order, with their types:
    what survivorship chooses from. A source without an attribute gives it as a typed null. -#}
{% macro identity_record_attributes() -%}
    {{ return([
        ('first_name', 'varchar'),
        ('last_name', 'varchar'),
        ('email_normalized', 'varchar'),
        ('phone_e164', 'varchar'),
        ('date_of_birth', 'date'),
        ('address_line1', 'varchar'),
        ('address_line2', 'varchar'),
        ('city', 'varchar'),
        ('postal_code', 'varchar'),
        ('region', 'varchar'),
        ('country_code', 'varchar'),
        ('time_zone', 'varchar'),
    ]) }}
{%- endmacro %}

{#- One source entity's identity records: a select of `relation` (one row per record) with the
    source, entity, record id (column `record_id`), survivorship `priority` (lower wins), every
    attribute of identity_record_attributes() and updated_at. `kept`: attributes the relation holds
    under the same name; `renamed`: attribute → the relation's expression for it; any other
    attribute is null. -#}
{% macro identity_records(relation, source, entity, record_id, priority, kept=[], renamed={}) -%}
    select
        '{{ source }}' as source,
        '{{ entity }}' as entity,
        {{ record_id }} as source_record_id,
        {{ priority }} as source_priority,
        {%- for name, type in identity_record_attributes() %}
        {%- if name in kept %}
        {{ name }},
        {%- elif name in renamed %}
        {{ renamed[name] }} as {{ name }},
        {%- else %}
        cast(null as {{ sql_type(type) }}) as {{ name }},
        {%- endif %}
        {%- endfor %}
        updated_at
    from {{ relation }}
{%- endmacro %}
