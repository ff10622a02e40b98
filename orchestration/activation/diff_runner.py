"""Run one diff-based sync (webhook, Postgres table): consent-checked audience → diff against the
acknowledged state → send only the changes → record every row's outcome in activation.sync_state,
activation.contact_history and activation.sync_runs.

Crash safety: the plan is written to activation.sync_plan before anything is sent, and rows are
sent and acknowledged chunk by chunk. A run that finds a plan a crash left pending resumes it
first — re-checking consent, so a person who withdrew in between is not sent (and removed, if a
crash left their create applied but unacknowledged) — and then plans what changed since. Rows sent
but not acknowledged before a crash are resent with the same idempotency key, which the
destination applies once (a plan left by code before the key change of 9cac6a6 resumes with the
current keys: see docs/activation.md, "Resuming a plan left by older code").

Holdout members and rows filtered by consent are recorded (held_out / filtered, with the reason)
and never sent; people the destination holds who may no longer be contacted are removed.

A killed run leaves records: its sync_runs row (written `running` when it starts) and, for each
chunk it sent, a row of activation.sync_sent (written before the chunk leaves). The run that
resumes its plan records the rows the killed run sent but never acknowledged in
contact_history under the killed run (outcome `unknown`, "interrupted"; the resumed send then
records how each ended), marks the killed run's sync_runs row `interrupted` with its counts,
and names the plan it resumed in its own row (`resumed_sync_run_id`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from orchestration.activation.destinations.rows import (
    APPLIED_AT_FIRST_ATTEMPT,
    EncodedRows,
    Outcome,
    Row,
    payload_sql,
)
from orchestration.activation.diff import (
    acknowledge_chunk,
    ensure_state,
    parked_sql,
    pending_plan,
    pending_sql,
    plan_diff,
    refresh_pending,
)
from orchestration.activation.planner import PLAN_TABLE, build_plan, withdrawn_sql
from orchestration.activation.portable import constraint_errors
from orchestration.activation.records import ensure_tables
from orchestration.activation.runner import SyncOutcome, record_sync_run
from orchestration.activation.sync_definition import SyncDefinition
from orchestration.contracts.rules_sql import quote_ident
from orchestration.engine import Connection, changed_rows, create_temp_table, dialect_of

# Rows acknowledged in one transaction (whole chunks, at least this many): one DuckDB row group.
# DuckDB writes a transaction's full row groups of sync_state and contact_history straight to
# the database file instead of the WAL (chunks of CHUNK_ROWS, 12 to a row group, so a
# transaction is whole row groups), so commits are cheaper and the checkpoint has little WAL
# left to replay (figures in docs/benchmarks.md, "Design measurements").
# What a crash can cost: the rows sent since the last acknowledgement, resent with the same keys
ACK_ROWS = 122_880
CHUNK_ROWS = ACK_ROWS // 12  # rows read and sent at a time (10,240)


class Destination(Protocol):
    """What the runner needs of a destination: send rows, return each row's outcome by key."""

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]: ...


@runtime_checkable
class EncodedDestination(Destination, Protocol):
    """A destination that also takes rows encoded by SQL without a Row object per row
    (WebhookClient.send_encoded): used for chunks whose identifiers are distinct."""

    def send_encoded(self, rows: EncodedRows) -> dict[str, Outcome]: ...


def run_diff_sync(
    con: Connection,
    sync: SyncDefinition,
    as_of: dt.date,
    run_id: str,
    destination: Destination,
    chunk_rows: int = CHUNK_ROWS,
    log: Callable[[str], None] = lambda message: None,
    ack_rows: int = ACK_ROWS,
) -> SyncOutcome:
    """Resume a pending plan (if a crash left one), then plan, send and record this sync for
    as_of; returns the run's counts."""
    ensure_tables(con)
    ensure_state(con)
    started, started_at = time.time(), dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sync_run_id = hashlib.md5(f"{run_id}|{sync.name}".encode()).hexdigest()[:16]
    out = SyncOutcome(sync.name, sync.segment, status="running")
    # a row from the start: a run killed mid-sync (no cleanup) leaves it `running`
    record_sync_run(
        con, sync_run_id, run_id, sync, sync.destination, as_of, out, 0, started, started_at
    )
    try:
        return _run_diff_sync(
            con, sync, as_of, run_id, destination, chunk_rows, log, ack_rows, out,
            sync_run_id, started, started_at,
        )  # fmt: skip
    except BaseException:
        out.status = "failed"  # a failure this process saw (a killed one never gets here)
        with contextlib.suppress(Exception):
            record_sync_run(
                con, sync_run_id, run_id, sync, sync.destination, as_of, out, 0, started,
                started_at,
            )  # fmt: skip
        raise


def _run_diff_sync(
    con: Connection,
    sync: SyncDefinition,
    as_of: dt.date,
    run_id: str,
    destination: Destination,
    chunk_rows: int,
    log: Callable[[str], None],
    ack_rows: int,
    out: SyncOutcome,
    sync_run_id: str,
    started: float,
    started_at: dt.datetime,
) -> SyncOutcome:
    # consent on every row, holdouts marked; the whole audience (the state decides what to send)
    counts = build_plan(con, sync, as_of, skip_recorded=False)
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
    context = (con, sync, as_of, run_id, sync_run_id, destination, chunk_rows, ack_rows, out, log)
    pending = pending_plan(con, sync.name)
    last_sent = None
    if pending:
        [(last_sent,)] = con.execute(
            "select max(sent_at) from activation.sync_sent where sync_id = ? and plan_id = ?",
            [sync.name, pending[0]],
        ).fetchall()
        # what the killed run sent and never acknowledged, recorded under it (before the
        # re-check below changes actions and refresh_pending renumbers the rows)
        interrupted = _record_interrupted(con, sync, pending[0], sync_run_id)
        dropped = _recheck_consent(con, sync.name, pending[0])
        log(
            f"{sync.name}: resuming plan {pending[0]} of {pending[1]}; {interrupted} rows "
            f"sent by the interrupted run without an answer recorded; {dropped} rows dropped"
        )
        out.dropped_at_resume = dropped
        out.resumed_sync_run_id = pending[0]
    _close_interrupted_runs(con, sync.name, sync_run_id)
    if pending:
        refresh_pending(con, sync.name, pending[0], _CONTACTS)
        _send_plan(*context, plan_id=pending[0], resumed=True, last_sent=last_sent)
    diff = plan_diff(
        con, sync.name, sync_run_id, as_of, "sync_desired", "identifier_value",
        list(sync.fields), sync.mode, sync.max_remove_share, withdrawn_relation="sync_withdrawn",
        contacts_relation=_CONTACTS,
    )  # fmt: skip
    out.planned += diff.create + diff.update + diff.remove
    out.skipped_parked = diff.parked
    con.execute(
        "update activation.sync_runs set planned = ? where sync_run_id = ?",
        [out.planned, sync_run_id],
    )
    con.execute("drop table if exists sync_desired; drop table if exists sync_withdrawn")
    _send_plan(*context, plan_id=sync_run_id)
    # finished plans are history in contact_history; only pending rows need to survive a crash.
    # Deleted before the next commit, the one that brings the checkpoint deferred while sending:
    # the checkpoint then does not write the plan's rows (the widest table) only to drop them
    for table in ("sync_plan", "sync_sent"):  # the chunks sent of finished plans too
        con.execute(
            f"delete from activation.{table} where sync_id = ? and plan_id not in "
            "(select plan_id from activation.sync_plan where sync_id = ? and outcome is null)",
            [sync.name, sync.name],
        )
    out.status = "success" if out.ok + out.rejected == out.sent else "partial"
    _record_not_sent(con, sync, as_of, run_id, sync_run_id)
    record_sync_run(
        con, sync_run_id, run_id, sync, sync.destination, as_of, out, 0, started, started_at
    )
    con.execute(f"drop table if exists {PLAN_TABLE}")
    return out


# what contact_history records of a planned row's person: the contact point and consent read by
# this run's consent check (one row per customer)
_CONTACTS = (
    f"(select customer_id, contact_point, consent_status, consent_captured_at from {PLAN_TABLE})"
)


def _identifier_expr(sync: SyncDefinition, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    if sync.identifier == "customer_id":
        return f"{prefix}customer_id"
    return f"{prefix}{quote_ident('f_' + sync.identifier)}"


def _desired_rows(con: Connection, sync: SyncDefinition) -> None:
    """sync_desired: the rows to have at the destination — consented, not held out, mapped."""
    columns = ", ".join(f"{quote_ident('f_' + n)} as {quote_ident(n)}" for n in sync.fields)
    create_temp_table(
        con,
        "sync_desired",
        f"select cast({_identifier_expr(sync)} as varchar) as identifier_value, customer_id, "
        f"{columns} from {PLAN_TABLE} where filter_reason is null and not is_holdout",
    )


def _withdrawn_rows(con: Connection, sync: SyncDefinition, as_of: dt.date) -> None:
    """sync_withdrawn: rows held at the destination whose person may no longer be contacted."""
    create_temp_table(con, "sync_withdrawn", withdrawn_sql(sync, as_of, dialect_of(con)))


def _recheck_consent(con: Connection, sync_id: str, plan_id: str) -> int:
    """Re-check a resumed plan against the audience planned now: pending creates and updates
    whose person is no longer in the consented audience are not sent (why goes in `error`);
    returns how many.

    A pending update's row is in sync_state, so this run's diff removes it if its person may no
    longer be contacted. A pending create has no state row, yet the destination may have
    applied it in a chunk the crash left unacknowledged — it becomes a removal (a no-op at the
    destination if it never arrived), so nobody the crash left behind stays there unrecorded."""
    reason = f"""
        coalesce(
            (select 'consent:' || p.filter_reason from {PLAN_TABLE} as p
             where p.customer_id = plan.customer_id and p.filter_reason is not null limit 1),
            (select 'held_out' from {PLAN_TABLE} as p
             where p.customer_id = plan.customer_id and p.is_holdout limit 1),
            'left_audience'
        )
    """
    not_desired = (
        "plan.sync_id = ? and plan.plan_id = ? and plan.outcome is null "
        "and plan.identifier not in (select identifier_value from sync_desired)"
    )
    dropped = changed_rows(
        con,
        f"update activation.sync_plan as plan set outcome = 'dropped', error = {reason} "
        f"where {not_desired} and plan.action = 'update'",
        [sync_id, plan_id],
    )
    removed = changed_rows(
        con,
        f"update activation.sync_plan as plan "
        f"set action = 'remove', fields_json = null, error = {reason} "
        f"where {not_desired} and plan.action = 'create'",
        [sync_id, plan_id],
    )
    return dropped + removed


def _record_interrupted(
    con: Connection, sync: SyncDefinition, plan_id: str, resumed_by: str
) -> int:
    """contact_history rows, under the run that sent them, for the pending rows of a plan that
    an interrupted run (killed, or failed mid-send) sent and never acknowledged: outcome
    `unknown` ("interrupted" — the destination may have applied them); the resumed send records
    how each ended. The sent-chunk rows of the plan are then done with (the resume renumbers
    the pending rows). Returns how many rows were recorded."""
    recorded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    why = (
        "interrupted: the sync run ended before the destination's answer was recorded; "
        f"resent by sync run {resumed_by}"
    )
    arm = sync.arm_sql("p.customer_id", dialect_of(con))
    con.execute("begin transaction")
    try:
        # each pending row once, with the last chunk that sent it (a window in a subquery)
        count = changed_rows(
            con,
            f"""
            insert into activation.contact_history
            select
                md5(p.sync_id || '|' || cast(p.as_of as varchar) || '|' || p.identifier || '|'
                    || p.run_id || '|' || p.plan_id),
                p.sync_id, p.sync_run_id, p.run_id, ?, ?, ?, ?, p.as_of,
                coalesce(p.customer_id, p.identifier), p.contact_point, 'unknown', false, null,
                case when p.action = 'remove' then 'removed: ' else '' end || ?,
                p.consent_status, p.consent_captured_at, p.sent_at, 1, cast(? as timestamp),
                case when p.action <> 'remove' then {arm} end
            from (
                select
                    pending.*, j.sync_run_id, j.run_id, j.sent_at,
                    row_number() over (
                        partition by pending.identifier, pending.seq order by j.sent_at desc
                    ) as nth_send
                from activation.sync_plan as pending
                inner join activation.sync_sent as j
                    on j.sync_id = pending.sync_id and j.plan_id = pending.plan_id
                    and pending.seq between j.first_seq and j.last_seq
                where pending.sync_id = ? and pending.plan_id = ? and pending.outcome is null
            ) as p
            where p.nth_send = 1
            """,
            [sync.destination, sync.segment, sync.channel, sync.purpose, why, recorded_at,
             sync.name, plan_id],
        )  # fmt: skip
        con.execute(
            "delete from activation.sync_sent where sync_id = ? and plan_id = ?",
            [sync.name, plan_id],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return count


def _close_interrupted_runs(con: Connection, sync_id: str, current: str) -> None:
    """sync_runs rows of this sync still `running` but for this run's are runs that were killed
    (one writer: no other run of the sync is under way): marked `interrupted`, with the counts
    of what they recorded in contact_history (acknowledged rows, and rows sent without an
    answer recorded, `unknown`)."""
    dead = (
        "select sync_run_id from activation.sync_runs "
        "where sync_id = ? and status = 'running' and sync_run_id <> ?"
    )
    if not con.execute(f"select count(*) from ({dead}) as d", [sync_id, current]).fetchone()[0]:
        return
    con.execute(
        f"""
        update activation.sync_runs as r set
            sent = h.sent, ok = h.ok, rejected = h.rejected, retryable = h.retryable,
            unknown = h.unknown, finished_at = h.last_at,
            duration_seconds = epoch(h.last_at) - epoch(r.started_at)
        from (
            select
                sync_run_id,
                count(*) filter (where outcome in ('ok', 'rejected', 'retryable', 'unknown'))
                    as sent,
                count(*) filter (where outcome = 'ok') as ok,
                count(*) filter (where outcome = 'rejected') as rejected,
                count(*) filter (where outcome = 'retryable') as retryable,
                count(*) filter (where outcome = 'unknown') as unknown,
                max(recorded_at) as last_at
            from activation.contact_history
            where sync_id = ? and sync_run_id in ({dead})
            group by sync_run_id
        ) as h
        where r.sync_run_id = h.sync_run_id
        """,
        [sync_id, sync_id, current],
    )
    con.execute(
        f"update activation.sync_runs set status = 'interrupted' where sync_run_id in ({dead})",
        [sync_id, current],
    )


def _send_plan(
    con: Connection,
    sync: SyncDefinition,
    as_of: dt.date,
    run_id: str,
    sync_run_id: str,
    destination: Destination,
    chunk_rows: int,
    ack_rows: int,
    out: SyncOutcome,
    log: Callable[[str], None],
    plan_id: str,
    resumed: bool = False,
    last_sent: dt.datetime | None = None,
) -> None:
    """Send a plan's pending rows chunk by chunk, in seq (identifier) order; acknowledge and
    record each chunk. `resumed`: the plan of an interrupted run, whose rows may already be
    applied — a destination with `send_resumed` (platforms without idempotency keys) reads
    them back before sending, so none is applied twice (`last_sent`: when the interrupted run
    sent its last chunk, UTC; its requests may land until a timeout after it).

    Each chunk is acknowledged and recorded (sync_state, the chunk out of the plan and
    contact_history) in one transaction.

    The plan's rows carry what sending, acknowledging and recording them needs (plan_diff and
    refresh_pending wrote their seq, state row before sending, contact point and consent), so
    a chunk is read straight from the plan's own row groups however large the plan, its
    idempotency keys and payload texts built by DuckDB as it is read. Three steps overlap:
    while chunk n is at the destination, chunk n + 1 is read and the chunks before are
    acknowledged (on a cursor of its own), ack_rows at a time. Chunks are sent one after the
    other (a chunk's batches may overlap, see WebhookConfig.max_in_flight); a crash leaves the
    rows sent since the last acknowledgement (at most ack_rows and two chunks) not
    acknowledged, resent on resume with the same idempotency keys.

    On an engine other than DuckDB the acknowledgements run on `con` itself, in this thread,
    after the chunk's answer (a session runs one transaction at a time: the loop's own
    statements would land in an acknowledgement's transaction): sending and reading the next
    chunk still overlap."""
    # read to the end (fetchall): DuckDB refuses some calls while a result is unfinished
    [(total, last_seq)] = con.execute(
        "select count(*), coalesce(max(seq), 0) from activation.sync_plan "
        "where sync_id = ? and plan_id = ? and outcome is null",
        [sync.name, plan_id],
    ).fetchall()
    if not total:  # nothing to send (an unchanged audience): no threads, no settings changed
        return
    done = 0
    duck = dialect_of(con) == "duckdb"
    # DuckDB: the acknowledgements' own connection to the warehouse, in a thread of their own
    cursor = con.cursor() if duck else con  # type: ignore[attr-defined]
    acknowledgements = (
        ThreadPoolExecutor(1, thread_name_prefix="c360-acknowledge") if duck else _InThisThread()
    )
    try:
        with (
            _settings_while_sending(con) if duck else contextlib.nullcontext(),
            ThreadPoolExecutor(1, thread_name_prefix="c360-send") as sender,
            acknowledgements as acknowledger,
        ):
            acknowledging: Future | None = None
            unacknowledged: list[tuple[pa.Table, _Chunk]] = []  # sent, with their outcomes
            encoded = isinstance(destination, EncodedDestination)
            chunk = _read_chunk(con, sync.name, plan_id, 0, chunk_rows)
            while chunk:
                # written (committed) before the chunk leaves: a killed run's records
                con.execute(
                    "insert into activation.sync_sent values (?, ?, ?, ?, ?, ?, ?)",
                    [sync.name, plan_id, sync_run_id, run_id, chunk.first_seq, chunk.last_seq,
                     dt.datetime.now(dt.UTC).replace(tzinfo=None)],
                )  # fmt: skip
                if resumed and hasattr(destination, "send_resumed"):
                    sending = sender.submit(
                        destination.send_resumed, chunk.rows().values(), last_sent
                    )
                elif encoded and chunk.distinct:
                    sending = sender.submit(destination.send_encoded, chunk.encoded)
                else:
                    sending = sender.submit(destination.send, chunk.rows().values())
                following = (
                    _read_chunk(con, sync.name, plan_id, chunk.last_seq, chunk_rows)
                    if chunk.last_seq < last_seq
                    else None
                )
                outcomes = sending.result()
                recorded, ended = _with_outcomes(chunk, outcomes)
                unacknowledged.append((recorded, chunk))
                if following is None or sum(t.num_rows for t, _ in unacknowledged) >= ack_rows:
                    if acknowledging is not None:
                        # one acknowledgement at a time, in order; it counts the rows it parked
                        out.parked += acknowledging.result()
                    acknowledging = acknowledger.submit(
                        _acknowledge_and_record, cursor, sync, as_of, run_id, sync_run_id,
                        plan_id, pa.concat_tables([t for t, _ in unacknowledged]),
                        unacknowledged[0][1].first_seq, chunk.last_seq,
                        all(sent.distinct for _, sent in unacknowledged),
                    )  # fmt: skip
                    unacknowledged = []
                out.sent += len(outcomes)  # one outcome per row sent (one per identifier)
                for status, count in ended.items():
                    setattr(out, status, getattr(out, status) + count)
                done += len(outcomes)
                log(f"{sync.name}: sent {done:,}/{total:,} rows of plan {plan_id}")
                chunk = following
            if acknowledging is not None:
                out.parked += acknowledging.result()
    finally:
        if duck:
            cursor.close()


class _InThisThread(contextlib.AbstractContextManager):
    """An executor that runs each task when it is submitted, in the caller's thread (an error
    is raised there and then): the acknowledgements on a connection the loop shares."""

    def submit(self, fn: Callable[..., int], *args: object) -> Future:
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    def __exit__(self, *exc: object) -> None:
        return None


# While a plan is sent, DuckDB's automatic checkpoint (at 16 MiB of WAL by default) would run
# every few chunks, each rewriting what changed since the last in sync_state (with its primary
# key index), sync_plan and contact_history: at 500k rows that doubled the time of the
# acknowledgements, and it grows with the tables. The WAL is still written and synced at every
# commit (nothing is less durable); the checkpoint comes once, at the first commit after.
DEFERRED_CHECKPOINT_THRESHOLD = "4GB"
# And one DuckDB thread: an acknowledgement inserted by two threads is written as two half row
# groups per thread, which the checkpoint after the sync then merges and rewrites; the
# statements while sending are small, so one thread costs the loop nothing
SENDING_THREADS = 1


@contextmanager
def _settings_while_sending(con: Connection) -> Iterator[None]:
    """Raise the database's checkpoint_threshold and use SENDING_THREADS while sending (both
    database-wide settings), then restore them."""
    [(threshold, threads)] = con.execute(
        "select current_setting('checkpoint_threshold'), current_setting('threads')"
    ).fetchall()
    con.execute(f"set checkpoint_threshold = '{DEFERRED_CHECKPOINT_THRESHOLD}'")
    con.execute(f"set threads = {min(SENDING_THREADS, int(threads))}")
    try:
        yield
    finally:
        con.execute(f"set threads = {int(threads)}")
        con.execute(f"set checkpoint_threshold = '{threshold}'")


@dataclass
class _Chunk:
    """Consecutive pending rows of a plan (seq first_seq..last_seq), built to send."""

    first_seq: int
    last_seq: int
    table: pa.Table  # the rows (pending_sql's columns), as the plan holds them, without texts
    # no two rows share an identifier (rows sharing one share a seq): the common case
    distinct: bool
    encoded: EncodedRows  # every row, by seq: key and payload text built by DuckDB

    def rows(self) -> dict[str, Row]:
        """One Row per identifier (rows sharing an identifier: the last one read speaks for
        all, and acknowledging records its outcome for each of them)."""
        built = self.encoded.rows(0, self.table.num_rows)
        return {row.identifier: row for row in built}

    def keys(self) -> list[str]:
        """Each row's idempotency key as sent, by seq (the key of the row sent for it)."""
        if self.distinct:
            return list(self.encoded.keys)
        rows = self.rows()
        return [rows[identifier].idempotency_key for identifier in self.encoded.identifiers()]


def _with_outcomes(chunk: _Chunk, outcomes: dict[str, Outcome]) -> tuple[pa.Table, Counter]:
    """The chunk's rows with how each ended (status, error, attempts), and the count of rows
    sent by status."""
    ended = list(map(outcomes.__getitem__, chunk.keys()))  # one per plan row, in seq order
    if ended.count(APPLIED_AT_FIRST_ATTEMPT) == len(ended):  # every row applied at once
        rows = len(ended)
        table = chunk.table.append_column("status", pa.repeat(pa.scalar("ok"), rows))
        table = table.append_column("error", pa.nulls(rows, pa.string()))
        table = table.append_column("attempts", pa.repeat(pa.scalar(1, pa.int32()), rows))
        return table, Counter({"ok": rows if chunk.distinct else len(outcomes)})
    statuses = [outcome.status for outcome in ended]
    table = chunk.table.append_column("status", pa.array(statuses, pa.string()))
    table = table.append_column(
        "error", pa.array([outcome.reason or None for outcome in ended], pa.string())
    )
    table = table.append_column(
        "attempts", pa.array([outcome.attempts for outcome in ended], pa.int32())
    )
    if chunk.distinct:  # one plan row per row sent: the common case
        return table, Counter(statuses)
    return table, Counter(outcome.status for outcome in outcomes.values())


def _read_chunk(
    con: Connection, sync_id: str, plan_id: str, after_seq: int, chunk_rows: int
) -> _Chunk | None:
    """The pending rows of the next chunk_rows identifiers after after_seq (None when done),
    with each row's idempotency key and payload text built by DuckDB from the fields' JSON text
    the plan stores (the same bytes on a resume, so the same key): two Python lists of strings,
    no object per row."""
    payload = payload_sql("idempotency_key", "op", "identifier", "fields_json")
    dialect = dialect_of(con)
    sql = (
        f"select *, {payload} as payload from ({pending_sql(sync_id, plan_id, True, dialect)}) "
        f"as pending where seq > {int(after_seq)} and seq <= {int(after_seq + chunk_rows)}"
    )
    if dialect == "duckdb":
        # no order by: the plan is written in seq order, which a scan keeps (DuckDB preserves
        # insertion order), and nothing here needs it: the chunk's bounds are its min and max
        table = con.sql(sql).to_arrow_table()  # type: ignore[attr-defined]
    else:  # a heap scan keeps no order: the rows are sent in seq order on every engine
        table = con.execute(sql + " order by seq, identifier").to_arrow_table()
    if not table.num_rows:
        return None
    identifiers, ops = table.column("identifier"), table.column("op")
    bounds = pc.min_max(table.column("seq"))
    first_seq, last_seq = bounds["min"].as_py(), bounds["max"].as_py()
    encoded = EncodedRows(
        keys=table.column("idempotency_key").to_pylist(),
        payloads=table.column("payload").to_pylist(),
        identifiers=cache(identifiers.to_pylist),
        ops=cache(ops.to_pylist),
    )
    # the texts are not needed again (acknowledging reads the other columns)
    table = table.drop_columns(["fields_json", "payload"])
    distinct = table.num_rows == last_seq - first_seq + 1
    return _Chunk(first_seq, last_seq, table, distinct, encoded)


def _acknowledge_and_record(
    cursor: Connection,
    sync: SyncDefinition,
    as_of: dt.date,
    run_id: str,
    sync_run_id: str,
    plan_id: str,
    chunk: pa.Table,
    first_seq: int,
    last_seq: int,
    distinct_identifiers: bool = False,
) -> int:
    """One transaction per chunk (the plan's pending rows seq first_seq..last_seq, with how
    each ended: status, error, attempts): sync_state acknowledged, the rows out of the plan,
    and contact_history — one row per sent row with its outcome (removals included).

    First-time state rows are inserted as they are (the cheap path, every row of a first
    sync); if one of them has a state row by now, the insert fails on the primary key, the
    transaction is rolled back (nothing of it was written) and redone with every state row
    upserted from the state as it is then — so a state row that appeared between the plan
    and the acknowledgement never fails the sync.

    A row rejected for the sync's max_attempts-th time in a row is parked (sync_state status
    `parked`, the reason in last_error); its contact_history row says so. Returns how many
    rows this acknowledgement parked."""
    recorded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    parked = parked_sql(sync.max_attempts, "c.")
    arm = sync.arm_sql("c.customer_id", dialect_of(cursor))

    def record(upsert: bool) -> None:
        """The chunk's transaction over the registered relation sync_chunk: all of it
        committed, or rolled back and the error raised."""
        cursor.execute("begin transaction")
        try:
            acknowledge_chunk(
                cursor, sync.name, plan_id, "sync_chunk", first_seq, last_seq,
                distinct_identifiers, upsert, sync.max_attempts,
            )  # fmt: skip
            cursor.execute(
                f"""
                insert into activation.contact_history
                select
                    md5(? || '|' || ? || '|' || c.identifier || '|' || ? || '|' || ?),
                    ?, ?, ?, ?, ?, ?, ?, cast(? as date), coalesce(c.customer_id, c.identifier),
                    c.contact_point, c.status, false, null,
                    case when {parked} then 'parked after {sync.max_attempts} rejections: '
                        else '' end
                    || case when c.action = 'remove' then 'removed' || coalesce(': ' || c.error, '')
                        else c.error end,
                    c.consent_status, c.consent_captured_at, cast(? as timestamp), c.attempts,
                    cast(? as timestamp),
                    case when c.action <> 'remove' then {arm} end
                from sync_chunk as c
                """,
                [sync.name, as_of.isoformat(), run_id, plan_id, sync.name, sync_run_id, run_id,
                 sync.destination, sync.segment, sync.channel, sync.purpose, as_of.isoformat(),
                 recorded_at, recorded_at],
            )  # fmt: skip
            cursor.execute("commit")
        except BaseException:
            cursor.execute("rollback")
            raise

    cursor.register("sync_chunk", chunk)
    try:
        try:
            record(upsert=False)
        except constraint_errors():
            if not distinct_identifiers:
                raise
            record(upsert=True)
        if not pc.any(pc.equal(chunk.column("status"), "rejected")).as_py():
            return 0  # the common case: nothing rejected, nothing parked
        [(count,)] = cursor.execute(
            f"select count(*) from sync_chunk as c where {parked}"
        ).fetchall()
        return count
    finally:
        cursor.unregister("sync_chunk")


def _record_not_sent(con, sync, as_of, run_id, sync_run_id) -> None:
    """contact_history: held-out members and rows filtered by consent (with the reason) — each
    decision once per sync and as_of: the activation schedule re-syncs an as_of several times a
    day, and an unchanged decision is not a new event (a changed one is recorded again)."""
    snapshot_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        f"""
        with decided as (
            select
                p.*,
                case when p.filter_reason is not null then 'filtered' else 'held_out' end
                    as outcome
            from {PLAN_TABLE} as p
            where p.filter_reason is not null or p.is_holdout
        )
        insert into activation.contact_history
        select
            md5(? || '|' || ? || '|' || p.customer_id || '|' || ?),
            ?, ?, ?, ?, ?, ?, ?, cast(? as date), p.customer_id, p.contact_point,
            p.outcome, p.is_holdout, p.filter_reason, null,
            p.consent_status, p.consent_captured_at, cast(? as timestamp), 0,
            cast(? as timestamp), p.arm
        from decided as p
        where not exists (
            select 1 from activation.contact_history as h
            where h.sync_id = ? and h.as_of = cast(? as date) and h.customer_id = p.customer_id
                -- the constant list first: DuckDB filters the history before the join on it
                and h.outcome in ('held_out', 'filtered')
                and h.outcome = p.outcome and h.filter_reason is not distinct from p.filter_reason
        )
        """,
        [sync.name, as_of.isoformat(), run_id, sync.name, sync_run_id, run_id,
         sync.destination, sync.segment, sync.channel, sync.purpose, as_of.isoformat(),
         snapshot_at, snapshot_at, sync.name, as_of.isoformat()],
    )  # fmt: skip
