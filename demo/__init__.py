"""Demo data, outside the runtime package: the deterministic sample-data generator (with ground
truth files and its noise and planted-truth profiles) and the live demo source systems (a CRM in
Postgres, a shop API) that `c360 generate` and `c360 sources` start. The pipeline never imports it."""
