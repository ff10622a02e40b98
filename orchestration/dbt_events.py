"""The dbt asset's Dagster events, taken from dbt's event stream as dbt sends them: each table or
incremental model's Output carrying `dagster/row_count`, and the invocation's node times.

The count comes from dbt itself: the post-hook `log_row_count` (dbt_project/macros/row_count.sql)
counts a table or incremental model's rows once it is built and logs `c360 row count: N` just
before dbt reports the model (a view is not counted: that would run its query). So Dagster stores
a night's ~100 events while dbt is still running, not after it; nothing opens the warehouse beside
dbt (on DuckDB dbt holds the file's write lock until it exits); every engine is counted the same
way. The node times (each node's `execution_time`, dbt's elapsed time) come from the same stream,
so dbt need not write run_results.json (the asset passes `--no-write-json`). A model that kept
its table (materialization `reusable_table`) logs `c360 reused: …`; its Output carries
`c360/reused: true`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

# what log_row_count logs (dbt_project/macros/row_count.sql)
ROW_COUNT = re.compile(r"^c360 row count: (\d+)$")
# what a reusable_table model logs when it keeps its table (dbt_project/macros/reusable_table.sql)
REUSED = re.compile(r"^c360 reused: ")
# dbt's events that report a node's result, each with its execution_time
_RESULTS = {
    "LogModelResult",
    "LogTestResult",
    "LogSeedResult",
    "LogSnapshotResult",
    "LogHookEndLine",
    "LogNodeNoOpResult",
    "LogSkipMessage",
}


@dataclass
class NodeTimes:
    """What one invocation's stream said of its nodes (grain: one dbt invocation)."""

    seconds: dict[str, float] = field(default_factory=dict)  # unique_id -> execution_time
    elapsed: float | None = None  # dbt's run, parse excluded (FinishedRunningStats)
    invocation_id: str | None = None
    failed: set[str] = field(default_factory=set)  # unique_ids whose result was an error


def _unique_id(event: Any) -> str | None:
    if not isinstance(event, dg.Output | dg.AssetMaterialization):
        return None
    value = event.metadata.get("unique_id")
    return getattr(value, "text", value)


def asset_events(invocation: Any, times: NodeTimes) -> Iterator[Any]:
    """The invocation's Dagster events, in dbt's order and as they come, a counted model's
    Output with `dagster/row_count`; fills `times` on the way."""
    counts: dict[str, int] = {}
    reused: set[str] = set()
    for raw in invocation.stream_raw_events():
        info, data = raw.raw_event["info"], raw.raw_event.get("data", {})
        name = info.get("name")
        times.invocation_id = times.invocation_id or info.get("invocation_id")
        unique_id = (data.get("node_info") or {}).get("unique_id")
        if name == "JinjaLogInfo" and unique_id:
            found = ROW_COUNT.match(str(data.get("msg", "")))
            if found:
                counts[unique_id] = int(found.group(1))
                continue
            if REUSED.match(str(data.get("msg", ""))):
                reused.add(unique_id)
                continue
        elif name in _RESULTS and unique_id:
            times.seconds[unique_id] = float(data.get("execution_time") or 0.0)
            if str(data.get("status", "")).lower() == "error":
                times.failed.add(unique_id)
        elif name == "FinishedRunningStats":
            times.elapsed = float(data.get("execution_time") or 0.0)
        for event in raw.to_default_asset_events(
            manifest=invocation.manifest,
            dagster_dbt_translator=invocation.dagster_dbt_translator,
            context=invocation.context,
            target_path=invocation.target_path,
            project=invocation.project,
        ):
            uid = _unique_id(event)
            if uid in counts:
                count = dg.MetadataValue.int(counts[uid])
                event = event.with_metadata({**event.metadata, "dagster/row_count": count})
            if uid in reused:
                # kept as built before: its code and inputs were those of its last build
                event = event.with_metadata({**event.metadata, "c360/reused": True})
            yield event
