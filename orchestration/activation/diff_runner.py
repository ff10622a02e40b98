"""Run one diff-based sync (webhook, Postgres table): consent-checked audience → diff against the
acknowledged state → send only the changes → record every row's outcome in activation.sync_state,
activation.contact_history and activation.sync_runs.

Crash safety: the plan is written to activation.sync_plan before anything is sent, and rows are
sent and acknowledged chunk by chunk. A run that finds a plan a crash left pending resumes it
first — re-checking consent, so a person who withdrew in between is dropped, not sent — and then
plans what changed since. Rows sent but not acknowledged before a crash are resent with the same
idempotency key, which the destination applies once.

Holdout members and rows filtered by consent are recorded (held_out / filtered, with the reason)
and never sent; people the destination holds who may no longer be contacted are removed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import duckdb

from orchestration.activation.destinations.webhook import Outcome, Row, make_row
from orchestration.activation.diff import acknowledge, ensure_state, pending_plan, plan_diff
from orchestration.activation.planner import PLAN_TABLE, build_plan, withdrawn_sql
from orchestration.activation.records import ensure_tables
from orchestration.activation.runner import SyncOutcome, record_sync_run
from orchestration.activation.syncs import SyncDefinition
from orchestration.contracts.rules_sql import quote_ident

CHUNK_ROWS = 10_000  # rows sent between acknowledgements: what a crash can cost in resends


class Destination(Protocol):
    """What the runner needs of a destination: send rows, return each row's outcome by key."""

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]: ...


def run_diff_sync(
    con: duckdb.DuckDBPyConnection,
    sync: SyncDefinition,
    as_of: dt.date,
    run_id: str,
    destination: Destination,
    chunk_rows: int = CHUNK_ROWS,
    log: Callable[[str], None] = lambda message: None,
) -> SyncOutcome:
    """Resume a pending plan (if a crash left one), then plan, send and record this sync for
    as_of; returns the run's counts."""
    ensure_tables(con)
    ensure_state(con)
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
    _desired_rows(con, sync)
    _withdrawn_rows(con, sync, as_of)
    context = (con, sync, as_of, run_id, sync_run_id, destination, chunk_rows, out, log)
    pending = pending_plan(con, sync.name)
    if pending:
        dropped = _recheck_consent(con, sync.name, pending[0])
        log(f"{sync.name}: resuming plan {pending[0]} of {pending[1]}; {dropped} rows dropped")
        out.dropped_at_resume = dropped
        _send_plan(*context, plan_id=pending[0])
    diff = plan_diff(
        con, sync.name, sync_run_id, as_of, "sync_desired", "identifier_value",
        list(sync.fields), sync.mode, sync.max_remove_share, withdrawn_relation="sync_withdrawn",
    )  # fmt: skip
    out.planned += diff.create + diff.update + diff.remove
    _send_plan(*context, plan_id=sync_run_id)
    out.status = "success" if out.ok + out.rejected == out.sent else "partial"
    _record_not_sent(con, sync, as_of, run_id, sync_run_id)
    record_sync_run(
        con, sync_run_id, run_id, sync, sync.destination, as_of, out, 0, started, started_at
    )
    # finished plans are history in contact_history; only pending rows need to survive a crash
    con.execute(
        "delete from activation.sync_plan where sync_id = ? and plan_id not in "
        "(select plan_id from activation.sync_plan where sync_id = ? and outcome is null)",
        [sync.name, sync.name],
    )
    con.execute(f"drop table if exists {PLAN_TABLE}")
    return out


def _identifier_expr(sync: SyncDefinition, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    if sync.identifier == "customer_id":
        return f"{prefix}customer_id"
    return f"{prefix}{quote_ident('f_' + sync.identifier)}"


def _desired_rows(con: duckdb.DuckDBPyConnection, sync: SyncDefinition) -> None:
    """sync_desired: the rows to have at the destination — consented, not held out, mapped."""
    columns = ", ".join(f"{quote_ident('f_' + n)} as {quote_ident(n)}" for n in sync.fields)
    con.execute(
        f"create or replace temp table sync_desired as select "
        f"cast({_identifier_expr(sync)} as varchar) as identifier_value, customer_id, {columns} "
        f"from {PLAN_TABLE} where filter_reason is null and not is_holdout"
    )


def _withdrawn_rows(con: duckdb.DuckDBPyConnection, sync: SyncDefinition, as_of: dt.date) -> None:
    """sync_withdrawn: rows held at the destination whose person may no longer be contacted."""
    con.execute(f"create or replace temp table sync_withdrawn as {withdrawn_sql(sync, as_of)}")


def _recheck_consent(con: duckdb.DuckDBPyConnection, sync_id: str, plan_id: str) -> int:
    """Drop the pending creates and updates of a resumed plan whose person is no longer in the
    consented audience (outcome `dropped`, with why); returns how many."""
    reason = f"""
        coalesce(
            (select 'consent:' || p.filter_reason from {PLAN_TABLE} as p
             where p.customer_id = plan.customer_id and p.filter_reason is not null limit 1),
            (select 'held_out' from {PLAN_TABLE} as p
             where p.customer_id = plan.customer_id and p.is_holdout limit 1),
            'left_audience'
        )
    """
    return con.execute(
        f"""
        update activation.sync_plan as plan
        set outcome = 'dropped', error = {reason}
        where plan.sync_id = ? and plan.plan_id = ? and plan.outcome is null
            and plan.action <> 'remove'
            and plan.identifier not in (select identifier_value from sync_desired)
        """,
        [sync_id, plan_id],
    ).fetchone()[0]


def _send_plan(
    con: duckdb.DuckDBPyConnection,
    sync: SyncDefinition,
    as_of: dt.date,
    run_id: str,
    sync_run_id: str,
    destination: Destination,
    chunk_rows: int,
    out: SyncOutcome,
    log: Callable[[str], None],
    plan_id: str,
) -> None:
    """Send a plan's pending rows chunk by chunk; acknowledge and record each chunk."""
    total = con.execute(
        "select count(*) from activation.sync_plan where sync_id = ? and plan_id = ? "
        "and outcome is null",
        [sync.name, plan_id],
    ).fetchone()[0]
    done = 0
    while True:
        chunk = con.execute(
            "select identifier, customer_id, action, fields_json from activation.sync_plan "
            "where sync_id = ? and plan_id = ? and outcome is null order by identifier limit ?",
            [sync.name, plan_id, chunk_rows],
        ).fetchall()
        if not chunk:
            return
        rows = {
            identifier: make_row(
                sync.name, identifier, "delete" if action == "remove" else "upsert",
                json.loads(fields) if fields else {},
            )
            for identifier, _, action, fields in chunk
        }  # fmt: skip
        outcomes = destination.send(rows.values())
        by_identifier = {i: outcomes[row.idempotency_key] for i, row in rows.items()}
        acknowledge(
            con, sync.name, plan_id, {i: (o.status, o.reason) for i, o in by_identifier.items()}
        )
        _record_sent(con, sync, as_of, run_id, sync_run_id, plan_id, by_identifier)
        out.sent += len(rows)
        for o in by_identifier.values():
            setattr(out, o.status, getattr(out, o.status) + 1)
        done += len(rows)
        log(f"{sync.name}: sent {done:,}/{total:,} rows of plan {plan_id}")


def _record_sent(con, sync, as_of, run_id, sync_run_id, plan_id, by_identifier) -> None:
    """contact_history: one row per sent row with its outcome (removals included)."""
    recorded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        "create or replace temp table sync_outcomes "
        "(identifier varchar, outcome varchar, error varchar, attempts integer)"
    )
    con.executemany(
        "insert into sync_outcomes values (?, ?, ?, ?)",
        [(i, o.status, o.reason or None, o.attempts) for i, o in by_identifier.items()],
    )
    con.execute(
        f"""
        insert into activation.contact_history
        select
            md5(? || '|' || ? || '|' || plan.identifier || '|' || ? || '|' || plan.plan_id),
            ?, ?, ?, ?, ?, ?, ?, cast(? as date), coalesce(plan.customer_id, plan.identifier),
            p.contact_point, o.outcome, false, null,
            case when plan.action = 'remove' then 'removed' || coalesce(': ' || o.error, '')
                else o.error end,
            p.consent_status, p.consent_captured_at, cast(? as timestamp), o.attempts,
            cast(? as timestamp)
        from activation.sync_plan as plan
        inner join sync_outcomes as o on plan.identifier = o.identifier
        left join {PLAN_TABLE} as p on plan.customer_id = p.customer_id
        where plan.sync_id = ? and plan.plan_id = ?
        """,
        [sync.name, as_of.isoformat(), run_id, sync.name, sync_run_id, run_id,
         sync.destination, sync.segment, sync.channel, sync.purpose, as_of.isoformat(),
         recorded_at, recorded_at, sync.name, plan_id],
    )  # fmt: skip


def _record_not_sent(con, sync, as_of, run_id, sync_run_id) -> None:
    """contact_history: held-out members and rows filtered by consent (with the reason)."""
    snapshot_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        f"""
        insert into activation.contact_history
        select
            md5(? || '|' || ? || '|' || p.customer_id || '|' || ?),
            ?, ?, ?, ?, ?, ?, ?, cast(? as date), p.customer_id, p.contact_point,
            case when p.filter_reason is not null then 'filtered' else 'held_out' end,
            p.is_holdout, p.filter_reason, null,
            p.consent_status, p.consent_captured_at, cast(? as timestamp), 0,
            cast(? as timestamp)
        from {PLAN_TABLE} as p
        where p.filter_reason is not null or p.is_holdout
        """,
        [sync.name, as_of.isoformat(), run_id, sync.name, sync_run_id, run_id,
         sync.destination, sync.segment, sync.channel, sync.purpose, as_of.isoformat(),
         snapshot_at, snapshot_at],
    )  # fmt: skip
