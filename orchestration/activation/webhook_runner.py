"""Run one webhook sync: consent-checked audience → diff against the acknowledged state → send
only the changes (webhook client) → record every row's outcome in activation.sync_state,
activation.contact_history and activation.sync_runs.

Holdout members and rows filtered by consent are recorded (held_out / filtered, with the reason)
and never sent. A rerun of the same as_of resends nothing that ended ok.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

import duckdb

from orchestration.activation.destinations.webhook import Outcome, WebhookClient, make_row
from orchestration.activation.diff import acknowledge, plan_diff
from orchestration.activation.planner import PLAN_TABLE, build_plan
from orchestration.activation.records import ensure_tables
from orchestration.activation.runner import SyncOutcome, record_sync_run
from orchestration.activation.syncs import SyncDefinition
from orchestration.contracts.rules_sql import quote_ident


def run_webhook_sync(
    con: duckdb.DuckDBPyConnection,
    sync: SyncDefinition,
    as_of: dt.date,
    run_id: str,
    client: WebhookClient,
) -> SyncOutcome:
    """Plan, send and record one webhook sync for as_of; returns the run's counts."""
    ensure_tables(con)
    started, started_at = time.time(), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sync_run_id = hashlib.md5(f"{run_id}|{sync.name}".encode()).hexdigest()[:16]
    # consent on every row, holdouts marked; the whole audience (the state decides what to send)
    counts = build_plan(con, sync, as_of, skip_recorded=False)
    out = SyncOutcome(sync.name, sync.segment)
    out.audience_rows = sum(counts.values())
    out.held_out, out.filtered = counts.get("held_out", 0), counts.get("filtered", 0)
    out.filtered_by_reason = dict(
        con.execute(
            f"select filter_reason, count(*) from {PLAN_TABLE} where filter_reason is not null "
            "group by 1 order by 1"
        ).fetchall()
    )
    # the desired rows at the destination: consented, not held out, with the mapped fields
    columns = ", ".join(
        f"{quote_ident('f_' + name)} as {quote_ident(name)}" for name in sync.fields
    )
    identifier = (
        "customer_id"
        if sync.identifier == "customer_id"
        else f"{quote_ident('f_' + sync.identifier)}"
    )
    con.execute(
        f"create or replace temp table webhook_desired as select {identifier} as identifier_value,"
        f" customer_id, {columns} from {PLAN_TABLE} where filter_reason is null and not is_holdout"
    )
    diff = plan_diff(
        con, sync.name, as_of, "webhook_desired", "identifier_value", list(sync.fields),
        sync.mode, sync.max_remove_share,
    )  # fmt: skip
    plan = con.execute(
        "select identifier, action, fields_json from activation.sync_plan "
        "where sync_id = ? and as_of = ?",
        [sync.name, as_of],
    ).fetchall()
    rows = {
        identifier: make_row(
            sync.name, identifier, "delete" if action == "remove" else "upsert",
            json.loads(fields) if fields else {},
        )
        for identifier, action, fields in plan
    }  # fmt: skip
    outcomes: dict[str, Outcome] = client.send(rows.values()) if rows else {}
    by_identifier = {identifier: outcomes[row.idempotency_key] for identifier, row in rows.items()}
    acknowledge(con, sync.name, as_of, {i: (o.status, o.reason) for i, o in by_identifier.items()})
    out.planned = diff.create + diff.update + diff.remove
    out.sent = len(rows)
    for o in by_identifier.values():
        setattr(out, o.status, getattr(out, o.status) + 1)
    out.status = "success" if out.ok + out.rejected == out.sent else "partial"
    _record(con, sync, as_of, run_id, sync_run_id, by_identifier, out, started, started_at)
    con.execute(f"drop table if exists {PLAN_TABLE}")
    return out


def _record(con, sync, as_of, run_id, sync_run_id, by_identifier, out, started, started_at) -> None:
    """contact_history: one row per audience member (sent rows with their outcome, held out,
    filtered); sync_runs: the counts."""
    snapshot_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        "create or replace temp table webhook_outcomes "
        "(identifier varchar, outcome varchar, error varchar, attempts integer)"
    )
    if by_identifier:
        con.executemany(
            "insert into webhook_outcomes values (?, ?, ?, ?)",
            [(i, o.status, o.reason or None, o.attempts) for i, o in by_identifier.items()],
        )
    identifier = (
        "p.customer_id"
        if sync.identifier == "customer_id"
        else f"p.{quote_ident('f_' + sync.identifier)}"
    )
    con.execute(
        f"""
        insert into activation.contact_history
        select
            md5(? || '|' || ? || '|' || p.customer_id || '|' || ?),
            ?, ?, ?, 'webhook', ?, ?, ?, cast(? as date), p.customer_id, p.contact_point,
            case when p.filter_reason is not null then 'filtered'
                 when p.is_holdout then 'held_out' else o.outcome end,
            p.is_holdout, p.filter_reason, o.error,
            p.consent_status, p.consent_captured_at, cast(? as timestamp),
            coalesce(o.attempts, 0), cast(? as timestamp)
        from {PLAN_TABLE} as p
        left join webhook_outcomes as o on cast({identifier} as varchar) = o.identifier
        where p.filter_reason is not null or p.is_holdout or o.identifier is not null
        """,
        [sync.name, as_of.isoformat(), run_id, sync.name, sync_run_id, run_id, sync.segment,
         sync.channel, sync.purpose, as_of.isoformat(), snapshot_at, snapshot_at],
    )  # fmt: skip
    record_sync_run(con, sync_run_id, run_id, sync, "webhook", as_of, out, 0, started, started_at)
