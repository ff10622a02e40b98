{#- The identifier type a graph node stands for, from its key: value nodes 'v|<type>:<value>',
    record nodes 'r|<source>:<entity>:<id>' (each source record is its own permanent id). -#}
{% macro identity_node_type(node_key) -%}
    case
        when {{ node_key }} like 'v|email:%' then 'email'
        when {{ node_key }} like 'v|phone:%' then 'phone'
        when {{ node_key }} like 'v|name_address:%' then 'name_address'
        when {{ node_key }} like 'r|crm:contacts:%' then 'crm_contact_id'
        when {{ node_key }} like 'r|shop:customers:%' then 'shop_customer_id'
        when {{ node_key }} like 'r|loyalty:members:%' then 'loyalty_member_id'
        when {{ node_key }} like 'r|web:anonymous_ids:%' then 'anonymous_id'
    end
{%- endmacro %}

{#- A link's priority from var('identity').identifiers (lower wins); unlisted types rank last. -#}
{% macro identity_link_priority(identifier_type) -%}
    case {{ identifier_type }}
    {%- for name, settings in var('identity').get('identifiers', {}).items() %}
        when '{{ name }}' then {{ settings.get('priority', 99) | int }}
    {%- endfor %}
        else 99
    end
{%- endmacro %}
