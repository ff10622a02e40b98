-- customer_360 and customer_id_map describe the same set of customers.
{{ config(meta={'dagster': {'ref': {'name': 'customer_360'}}}) }}
select customer_id from {{ ref('customer_360') }}
except
select customer_id from {{ ref('customer_id_map') }}
