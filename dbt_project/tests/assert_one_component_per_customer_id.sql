-- A customer_id names exactly one connected component: two people never share an id (an id
-- minted for a split-off part must not repeat one the registry already holds).
select
    customer_id,
    count(distinct component_key) as components
from {{ ref('int_identity__assignments') }}
group by customer_id
having count(distinct component_key) > 1
