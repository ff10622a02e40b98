"""Run one file sync (a registry destination of style "file": file_drop) end to end: plan
(consent-checked), write the audience, record outcomes and the run summary."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from orchestration.activation.destinations import registry
from orchestration.activation.planner import PLAN_TABLE, build_plan, plan_sql
from orchestration.activation.records import ensure_tables
from orchestration.activation.sync_definition import SyncDefinition
from orchestration.engine import Connection, dialect_of


@dataclass
class SyncOutcome:
    sync_id: str
    segment_name: str
    audience_rows: int = 0
    planned: int = 0
    sent: int = 0
    ok: int = 0
    rejected: int = 0
    retryable: int = 0
    unknown: int = 0
    held_out: int = 0
    filtered: int = 0
    filtered_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_at_resume: int = 0  # pending rows of a crashed run's plan whose person withdrew
    parked: int = 0  # rows this run parked: rejected max_attempts times in a row (of rejected)
    skipped_parked: int = 0  # rows not sent: parked earlier, their fields unchanged since
    resumed_sync_run_id: str | None = None  # the killed sync run whose plan this run finished
    output_uri: str | None = None
    status: str = "success"

    def as_dict(self) -> dict:
        return asdict(self)


def run_sync(
    con: Connection,
    sync: SyncDefinition,
    as_of: dt.date,
    run_id: str,
    base_dir: Path,
) -> SyncOutcome:
    """Plan and execute `sync` for `as_of`. People already recorded for this as_of (delivered,
    held out or filtered) are not recorded again; a rerun after a failed write retries it."""
    ensure_tables(con)
    started = time.time()
    started_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sync_run_id = hashlib.md5(f"{run_id}|{sync.name}".encode()).hexdigest()[:16]
    counts = build_plan(con, sync, as_of)
    out = SyncOutcome(sync.name, sync.segment)
    out.audience_rows = con.execute(
        f"select count(*) from {sync.audience_table} where segment_name = ?", [sync.segment]
    ).fetchone()[0]
    out.planned = sum(counts.values())
    out.held_out = counts.get("held_out", 0)
    out.filtered = counts.get("filtered", 0)
    out.filtered_by_reason = dict(
        con.execute(
            f"select filter_reason, count(*) from {PLAN_TABLE} where filter_reason is not null "
            "group by 1 order by 1"
        ).fetchall()
    )
    send_outcome, error = "ok", None
    if counts.get("send", 0):
        # the file replaces any earlier one of this sync and as_of, so it holds the whole
        # consented audience — not only the rows new or failed since (those are what is recorded)
        everyone = (
            f"select * from ({plan_sql(sync, as_of, False, dialect=dialect_of(con))}) as p "
            "where p.filter_reason is null and not p.is_holdout"
        )
        result = registry.get(sync.destination).write(
            con,
            everyone,
            list(sync.fields),
            base_dir,
            sync.name,
            as_of,
            sync.file_format,
            uri=sync.uri,
        )
        out.output_uri = result.uri
        out.sent = counts["send"]
        if result.ok:
            out.ok = counts["send"]
        else:
            send_outcome, error, out.retryable, out.status = (
                "retryable",
                result.error,
                counts["send"],
                "failed",
            )
    snapshot_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        f"""
        insert into activation.contact_history
        select
            md5(? || '|' || ? || '|' || customer_id || '|' || ?),
            ?, ?, ?, ?, ?, ?, ?, cast(? as date), customer_id, contact_point,
            case when filter_reason is not null then 'filtered'
                 when is_holdout then 'held_out' else ? end,
            is_holdout, filter_reason,
            case when filter_reason is null and not is_holdout then ? end,
            consent_status, consent_captured_at, cast(? as timestamp),
            case when filter_reason is null and not is_holdout then 1 else 0 end,
            cast(? as timestamp), arm
        from {PLAN_TABLE}
        """,
        [
            sync.name,
            as_of.isoformat(),
            run_id,
            sync.name,
            sync_run_id,
            run_id,
            sync.destination,
            sync.segment,
            sync.channel,
            sync.purpose,
            as_of.isoformat(),
            send_outcome,
            error,
            snapshot_at,
            snapshot_at,
        ],
    )
    record_sync_run(
        con, sync_run_id, run_id, sync, sync.destination, as_of, out, out.audience_rows - out.planned,
        started, started_at,
    )  # fmt: skip
    con.execute(f"drop table if exists {PLAN_TABLE}")
    return out


def record_sync_run(
    con: Connection,
    sync_run_id: str,
    run_id: str,
    sync: SyncDefinition,
    destination: str,
    as_of: dt.date,
    out: SyncOutcome,
    already_sent: int,
    started: float,
    started_at: dt.datetime,
) -> None:
    """One row of activation.sync_runs: the run's counts for one sync (replacing the row
    `running` a diff sync wrote when it started)."""
    con.execute("delete from activation.sync_runs where sync_run_id = ?", [sync_run_id])
    con.execute(
        f"insert into activation.sync_runs ({SYNC_RUN_COLUMNS}) values "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [sync_run_id, run_id, sync.name, destination, sync.segment, as_of, out.status,
         out.audience_rows, out.planned, already_sent, out.sent, out.ok, out.rejected,
         out.retryable, out.unknown, out.held_out, out.filtered,
         json.dumps(out.filtered_by_reason), out.output_uri, started_at,
         dt.datetime.now(dt.UTC).replace(tzinfo=None), round(time.time() - started, 3),
         out.parked, out.skipped_parked, out.resumed_sync_run_id],
    )  # fmt: skip


SYNC_RUN_COLUMNS = (
    "sync_run_id, run_id, sync_id, destination, segment_name, as_of, status, audience_rows, "
    "planned, already_sent, sent, ok, rejected, retryable, unknown, held_out, filtered, "
    "filtered_by_reason, output_uri, started_at, finished_at, duration_seconds, parked, "
    "skipped_parked, resumed_sync_run_id"
)
