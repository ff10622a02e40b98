"""The identity graph's content key for one run (grain: one key per Dagster run).

Graph health (identity/health.py, identity/refusals.py) reads the final links, the limit drops,
the candidate and dropped links and the record-to-customer map. dbt's `reusable_table` models
take a digest of each of those tables when the run builds or keeps them and mark the row with
the run (`audit.model_fingerprints.verified_run`, docs/incremental.md). The key is a hash of
those digests: two runs with the same key measured the same graph, so a night that changed
nothing (the key of the last measured run) need not count millions of links again.

The map's own digest moves every night (its as_of column); its `inputs` — the records and their
customer ids — are what the health figures read of it. DuckDB only, and only for a run whose dbt
build marked all five (a run id, the nightly's code digest); otherwise None and health measures.
"""

from __future__ import annotations

import hashlib

from orchestration.engine import Connection, dialect_of, table_exists

STORE = "audit.model_fingerprints"
# model -> which of its digests stands for the rows health reads
READS = {
    "model.c360.int_identity__candidate_links": "output",
    "model.c360.int_identity__dropped_links": "output",
    "model.c360.int_identity__edges": "output",
    "model.c360.int_identity__limit_drops": "output",
    "model.c360.customer_id_map": "inputs",
}


def graph_key(con: Connection, run_id: str) -> str | None:
    """The content key of the graph run `run_id` resolved, or None when it cannot be vouched
    for (another engine, no run id, a model this run did not build or keep)."""
    if (
        not run_id
        or dialect_of(con) != "duckdb"
        or not table_exists(con, "audit", "model_fingerprints")
    ):
        return None
    columns = {r[0] for r in con.execute(f"select column_name from (describe {STORE})").fetchall()}
    if "verified_run" not in columns:
        return None
    models = sorted(READS)
    rows = con.execute(
        f"select model, inputs, output from {STORE} where verified_run = ? "
        f"and model in ({', '.join(['?'] * len(models))}) order by model",
        [run_id, *models],
    ).fetchall()
    if [r[0] for r in rows] != models:
        return None
    parts = [
        f"{model}={inputs if READS[model] == 'inputs' else output}"
        for model, inputs, output in rows
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
