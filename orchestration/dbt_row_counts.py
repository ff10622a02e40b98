"""`dagster/row_count` on the dbt assets that build a table: one count per table or incremental
model of the invocation (a view is not counted: that would run its query).

dagster-dbt's own `fetch_row_counts` opens the warehouse through dbt-duckdb, which keeps its
connection open in the step's process; the next step's connection then fails ("different
configuration"). So on DuckDB the invocation's events are held until dbt exits (it holds the
file's write lock until then), counted on one connection closed after, and yielded in dbt's order.
Spark is counted the same way, through the warehouse Connection: its dbt adapter lives in
.venv-spark, not in the Dagster process. Postgres uses dagster-dbt's fetch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import duckdb

from orchestration.engine import table_names
from orchestration.warehouse import engine, open_warehouse, warehouse

COUNTED = ("table", "incremental")


def _unique_id(event: Any) -> str | None:
    if not isinstance(event, dg.Output | dg.AssetMaterialization):
        return None
    value = event.metadata.get("unique_id")
    return getattr(value, "text", value)


def _counts(manifest: dict[str, Any], unique_ids: set[str]) -> dict[str, int]:
    """Rows per model, for the models whose table exists (a failed model may have none)."""
    if engine() != "duckdb":
        return _counts_on_server(manifest, unique_ids)
    out: dict[str, int] = {}
    with warehouse(read_only=True) as con:
        for uid in sorted(unique_ids):
            node = manifest["nodes"][uid]
            try:
                row = con.execute(
                    f'select count(*) from "{node["schema"]}"."{node["alias"]}"'
                ).fetchone()
            except duckdb.CatalogException:
                continue
            out[uid] = int(row[0])
    return out


def _counts_on_server(manifest: dict[str, Any], unique_ids: set[str]) -> dict[str, int]:
    """_counts through the engine's Connection: the tables that exist, counted."""
    out: dict[str, int] = {}
    with open_warehouse(read_only=True) as con:
        nodes = {uid: manifest["nodes"][uid] for uid in sorted(unique_ids)}
        existing = {
            schema: table_names(con, schema) for schema in {n["schema"] for n in nodes.values()}
        }
        for uid, node in nodes.items():
            if node["alias"] in existing[node["schema"]]:
                table = f"{node['schema']}.{node['alias']}"
                out[uid] = int(con.execute(f"select count(*) from {table}").fetchone()[0])
    return out


def with_row_counts(invocation: Any) -> Iterator[Any]:
    """The invocation's Dagster events, Output and AssetMaterialization of a table or
    incremental model carrying `dagster/row_count`."""
    manifest = invocation.manifest
    # the engine dbt runs on now (the profile's target), not the one the manifest was parsed for
    if engine() == "postgres":
        yield from invocation.stream().fetch_row_counts()
        return
    events = list(invocation.stream())
    invocation.process.wait()
    counted = {
        uid
        for uid in map(_unique_id, events)
        if uid and manifest["nodes"].get(uid, {}).get("config", {}).get("materialized") in COUNTED
    }
    counts = _counts(manifest, counted) if counted else {}
    for event in events:
        uid = _unique_id(event)
        if uid in counts:
            event = event.with_metadata(
                {**event.metadata, "dagster/row_count": dg.MetadataValue.int(counts[uid])}
            )
        yield event
