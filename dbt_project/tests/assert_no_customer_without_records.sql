-- customer_360 and customer_id_map describe the same set of customers.
select customer_id from {{ ref('customer_360') }}
except
select customer_id from {{ ref('customer_id_map') }}
