"""The diff planner: per sync, which identifiers to create, update or remove at the destination
against the last acknowledged state, so unchanged rows are never sent again.

State (`activation.sync_state`, one row per sync and destination identifier): the hash of the
fields last sent, how that row ended (ok, rejected, retryable, unknown, removed), attempts, the last
error, and whether this sync created the row at the destination (mirror mode removes only those).

Decisions, for each identifier of the desired audience (consented, not held out — from the
consent-checked plan) and each identifier in state:
- create: desired, not in state (or removed earlier);
- update: desired, in state, and its fields changed — or its last send did not end ok (a row that
  failed is retried even if unchanged);
- unchanged: desired, same fields, ended ok → not sent;
- remove: in state (not removed) and no longer desired — in mirror mode only rows this sync created;
  in every mode when the identifier is a customer_id a merge retired (marts.customer_id_history)
  or the person may no longer be contacted (consent withdrawn, suppressed, erased);
- mirror never acts on an empty or collapsed audience: the guard refuses a plan whose removals pass
  `max_remove_share` of the rows in state.

The plan is written to `activation.sync_plan` before anything is sent, each row with what sending
and acknowledging it needs (its seq, its state row before sending, contact point and consent), and
acknowledged chunk by chunk: an acknowledged row leaves the plan, so a crashed run resumes from the
rows still there (re-checking consent when it does).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from orchestration.activation.destinations.rows import idempotency_key_sql
from orchestration.activation.portable import json_object_text_sql, nul_byte_hash_sql
from orchestration.contracts.rules_sql import quote_ident, quote_literal
from orchestration.engine import Connection, create_temp_table, dialect_of, table_exists

STATE_DDL = """
create schema if not exists activation;
create table if not exists activation.sync_state (
    sync_id varchar not null,
    identifier varchar not null,
    row_hash varchar,
    status varchar not null,      -- ok, rejected, retryable, unknown, removed, parked
    attempts integer not null,
    last_error varchar,
    created_by_sync boolean not null,
    updated_as_of date not null,
    customer_id varchar,          -- who the row is (contact_history of a removal names them)
    generation integer not null default 0,  -- acknowledged applications (ok), part of the key
    last_action varchar,          -- create, update or remove: what the last send asked for
    rejections integer default 0, -- rejections in a row of the op and fields in rejected_hash
    rejected_hash varchar,        -- 'upsert:<row_hash>' or 'delete:<row_hash>' last rejected
    primary key (sync_id, identifier)
);
alter table activation.sync_state add column if not exists customer_id varchar;
alter table activation.sync_state add column if not exists generation integer default 0;
alter table activation.sync_state add column if not exists last_action varchar;
alter table activation.sync_state add column if not exists rejections integer default 0;
alter table activation.sync_state add column if not exists rejected_hash varchar;
create table if not exists activation.sync_plan (
    sync_id varchar not null,
    plan_id varchar not null,     -- the sync run that wrote the plan
    as_of date not null,
    identifier varchar not null,
    customer_id varchar,
    action varchar not null,      -- create, update, remove
    row_hash varchar,
    fields_json varchar,
    outcome varchar,              -- null while pending; dropped (or how acknowledge() ended it)
    error varchar
);
alter table activation.sync_plan add column if not exists seq bigint;
alter table activation.sync_plan add column if not exists state_row_hash varchar;
alter table activation.sync_plan add column if not exists state_attempts integer;
alter table activation.sync_plan add column if not exists state_created_by_sync boolean;
alter table activation.sync_plan add column if not exists state_customer_id varchar;
alter table activation.sync_plan add column if not exists state_generation integer;
alter table activation.sync_plan add column if not exists contact_point varchar;
alter table activation.sync_plan add column if not exists consent_status varchar;
alter table activation.sync_plan add column if not exists consent_captured_at timestamp;
alter table activation.sync_plan add column if not exists state_rejections integer;
alter table activation.sync_plan add column if not exists state_rejected_hash varchar;
-- the chunks of a plan sent and not yet known acknowledged, one row per chunk, written before
-- the chunk leaves: what a run killed mid-sync had sent (resume records those rows)
create table if not exists activation.sync_sent (
    sync_id varchar not null,
    plan_id varchar not null,
    sync_run_id varchar not null,  -- the sync run that sent the chunk
    run_id varchar not null,
    first_seq bigint not null,
    last_seq bigint not null,
    sent_at timestamp not null
);
"""

# the plan table's shape before plans could be resumed; a plan is transient, so it is recreated
_OLD_PLAN_CHECK = (
    "select count(*) from information_schema.columns where table_schema = 'activation' "
    "and table_name = 'sync_plan' and column_name = 'plan_id'"
)

PLAN_COLUMNS = (
    "sync_id, plan_id, as_of, identifier, customer_id, action, row_hash, fields_json, outcome, "
    "error, seq, state_row_hash, state_attempts, state_created_by_sync, state_customer_id, "
    "state_generation, contact_point, consent_status, consent_captured_at, state_rejections, "
    "state_rejected_hash"
)
STATE_COLUMNS = (
    "sync_id, identifier, row_hash, status, attempts, last_error, created_by_sync, "
    "updated_as_of, customer_id, generation, last_action, rejections, rejected_hash"
)
# the state of a sync that never ran, for read-only previews
EMPTY_STATE = (
    "(select cast(null as varchar) as sync_id, cast(null as varchar) as identifier,"
    " cast(null as varchar) as row_hash, cast(null as varchar) as status,"
    " 0 as attempts, cast(null as varchar) as last_error, false as created_by_sync,"
    " cast(null as date) as updated_as_of, cast(null as varchar) as customer_id,"
    " 0 as generation, cast(null as varchar) as last_action, 0 as rejections,"
    " cast(null as varchar) as rejected_hash where false)"
)


class MirrorGuardError(RuntimeError):
    """A mirror sync's removals pass the configured share: the audience looks collapsed."""


@dataclass(frozen=True)
class DiffCounts:
    create: int
    update: int
    unchanged: int
    remove: int
    parked: int = 0  # desired rows not sent: parked, and their fields unchanged since


# A row the destination permanently rejects (status `rejected`) is resent by later runs — a
# platform may reject for a reason that goes away — but not forever: after MAX_ATTEMPTS
# rejections in a row of the same op and fields (the sync's `max_attempts`) it is `parked`, the
# reason kept in last_error, and not sent again until its fields change (or, for a removal,
# ever: an operator reads sync_state). Retryable and unknown ends do not count.
MAX_ATTEMPTS = 3


def _rejected_as(prefix: str = "") -> str:
    """SQL of what a plan row sends, as sync_state.rejected_hash stores it: the op and the
    fields' hash ('upsert:<row_hash>', 'delete:<row_hash>')."""
    return (
        f"(case when {prefix}action = 'remove' then 'delete:' else 'upsert:' end"
        f" || coalesce({prefix}row_hash, ''))"
    )


def rejections_sql(prefix: str = "") -> str:
    """SQL of a plan row's rejections in a row after this send (`prefix`: the alias of a
    relation with the plan row's columns, its state_* columns and how it ended, `status`):
    counted on while the same op and fields are rejected, reset by an ok."""
    return f"""(case
        when {prefix}status = 'rejected' then
            case when {prefix}state_rejected_hash is not distinct from {_rejected_as(prefix)}
                then coalesce({prefix}state_rejections, 0) else 0 end + 1
        when {prefix}status = 'ok' then 0
        else coalesce({prefix}state_rejections, 0)
    end)"""


def parked_sql(max_attempts: int | str, prefix: str = "") -> str:
    """SQL: this send parks the row (rejected for the max_attempts-th time in a row);
    max_attempts an integer, or a placeholder text of a template."""
    limit = max_attempts if isinstance(max_attempts, str) else int(max_attempts)
    return f"({prefix}status = 'rejected' and {rejections_sql(prefix)} >= {limit})"


def ensure_state(con: Connection) -> None:
    """Create the state and plan tables (and bring an older plan table to the current shape)."""
    con.execute("create schema if not exists activation")
    if (
        table_exists(con, "activation", "sync_plan")
        and not con.execute(_OLD_PLAN_CHECK).fetchone()[0]
    ):
        con.execute("drop table activation.sync_plan")
    con.execute(STATE_DDL)


# which decisions each mode acts on (retired and withdrawn rows are removed in every mode)
_MODE_FILTER = {
    "upsert": "true",
    "mirror": "true",
    "update_only": "action in ('update', 'unchanged', 'remove')",
    "create_only": "action in ('create', 'unchanged')",
}


def diff_sql(
    sync_id: str,
    desired_relation: str,
    identifier_column: str,
    field_columns: list[str],
    mode: str,
    state_relation: str = "activation.sync_state",
    withdrawn_relation: str | None = None,
    changed_only: bool = False,
    dialect: str = "duckdb",
) -> str:
    """SQL of the plan (identifier, customer_id, action, row_hash, fields_json — the fields of
    creates and updates, null for removals and unchanged rows) for one sync.
    `desired_relation` has one row per identifier to have at the destination: the identifier
    column, customer_id and the fields. `withdrawn_relation` (column `identifier`): rows held at
    the destination whose person may no longer be contacted (consent withdrawn, suppressed,
    erased) — removed in every mode, like ids a merge retired.
    `changed_only` (not for mode delete): no unchanged rows, and every create, update and removal
    decided, with `kept` saying whether the mode acts on it — what plan_diff writes and counts
    without carrying the unchanged rows (unchanged = desired rows - creates - updates, kept or
    not: every mode keeps the unchanged rows).
    `dialect`: the warehouse's (engine.dialect_of): the row hash and the fields' JSON text are
    the same on every engine (portable.nul_byte_hash_sql, json_object_text_sql)."""
    ident = quote_ident(identifier_column)
    # the fields travel as field_<i> (a field may be named like a plan column, e.g. customer_id)
    carried = [f"field_{i}" for i in range(len(field_columns))]
    row_hash = nul_byte_hash_sql(
        [f"cast(desired.{quote_ident(c)} as varchar)" for c in field_columns], dialect
    )
    fields_json = json_object_text_sql(list(zip(field_columns, carried, strict=True)), dialect)
    desired_fields = "".join(
        f",\n        desired.{quote_ident(c)} as {f}"
        for c, f in zip(field_columns, carried, strict=True)
    )
    decided_fields = "".join(f",\n        desired.{f}" for f in carried)
    removed_fields = "".join(f",\n        null as {f}" for f in carried)
    removable = "state.created_by_sync" if mode == "mirror" else "false"
    keep = f"forced or {_MODE_FILTER.get(mode, 'true')}"
    if changed_only:  # parked rows are decided (and counted), never kept
        kept_column = f",\n    ({keep}) and action <> 'parked' as kept"
        where = "where action <> 'unchanged'"
    else:  # parked rows shown (a dry run), in every mode
        kept_column, where = "", f"where {keep} or action = 'parked'"
    withdrawn = (
        f"select identifier from {withdrawn_relation}"
        if withdrawn_relation
        else "select cast(null as varchar) as identifier where false"
    )
    # a state table from before parking (a read-only dry run of an older DuckDB warehouse) has
    # no rejection columns: by name, they are then null (ensure_state gives every Postgres
    # state table its columns)
    older_state = (
        "\n    union all by name\n    select cast(null as varchar) as rejected_hash, "
        "cast(0 as integer) as rejections where false"
        if dialect == "duckdb"
        else ""
    )
    # rows held at the destination that must go in every mode: ids a merge retired, people who
    # may no longer be contacted. Any state but removed: a create that ended unknown may have
    # been applied, and a removal that failed must be retried (a delete of an absent row is a
    # no-op at the destination)
    common = f"""
state as (
    select * from {state_relation}
    where sync_id = {quote_literal(sync_id)} and status <> 'removed'{older_state}
),

-- a removal the destination rejected max_attempts times in a row is parked: not resent
parked_removal as (
    select identifier from state
    where status = 'parked' and rejected_hash like 'delete:%'
),

retired as (
    select retired_customer_id as identifier from marts.customer_id_history
    union all
    {withdrawn}
)"""
    if mode == "delete":
        # delete mode: every audience member this sync holds at the destination is removed,
        # and the retired and withdrawn rows as in every mode
        return f"""
with {common},

desired as (
    select distinct cast(desired.{ident} as varchar) as identifier
    from {desired_relation} as desired
)

select
    state.identifier,
    state.customer_id,
    'remove' as action,
    state.row_hash,
    cast(null as varchar) as fields_json
from state
where
    (
        state.identifier in (select identifier from desired)
        or state.identifier in (select identifier from retired)
    )
    and state.identifier not in (select identifier from parked_removal)
"""
    # a leaver (mirror mode) is removed when its row is, or may be, at the destination: sent
    # ok, ended unknown, or a removal that has not succeeded yet (retried until it does;
    # a removal the destination rejected is not resent every night)
    may_be_held = (
        "state.status in ('ok', 'unknown') "
        "or (state.last_action = 'remove' and state.status <> 'rejected')"
    )
    return f"""
with desired as (
    select
        cast(desired.{ident} as varchar) as identifier,
        desired.customer_id,
        {row_hash} as row_hash{desired_fields}
    from {desired_relation} as desired
),

{common},

decided as (
    select
        desired.identifier,
        desired.customer_id,
        case
            when state.identifier is null then 'create'
            -- parked after max_attempts rejections: not resent until its fields change
            when state.status = 'parked' and state.rejected_hash = 'upsert:' || desired.row_hash
                then 'parked'
            when state.row_hash is distinct from desired.row_hash then 'update'
            when state.status <> 'ok' then 'update'
            else 'unchanged'
        end as action,
        desired.row_hash,
        false as forced{decided_fields}
    from desired
    left join state on desired.identifier = state.identifier
    union all
    select
        state.identifier,
        state.customer_id,
        'remove' as action,
        state.row_hash,
        state.identifier in (select identifier from retired) as forced{removed_fields}
    from state
    left join desired on state.identifier = desired.identifier
    where
        desired.identifier is null
        and (
            state.identifier in (select identifier from retired)
            or ({removable} and ({may_be_held}))
        )
        and state.identifier not in (select identifier from parked_removal)
)

-- the fields as JSON only for rows to send (unchanged rows are most rows on most nights)
select
    identifier,
    customer_id,
    action,
    row_hash,
    case
        when action in ('create', 'update') then {fields_json}
    end as fields_json{kept_column}
from decided
{where}
"""


def plan_diff(
    con: Connection,
    sync_id: str,
    plan_id: str,
    as_of: dt.date,
    desired_relation: str,
    identifier_column: str,
    field_columns: list[str],
    mode: str = "upsert",
    max_remove_share: float = 0.2,
    withdrawn_relation: str | None = None,
    contacts_relation: str | None = None,
) -> DiffCounts:
    """Write the plan `plan_id` of one sync to activation.sync_plan (every row pending, in
    identifier order) and return the counts; raise MirrorGuardError before writing a collapsed
    plan.

    Each plan row is written with what sending and acknowledging it need, so the rows are read
    straight from the plan chunk by chunk: `seq`, the dense rank of its identifier (rows sharing
    an identifier share it, and are sent and acknowledged together), its state row before
    sending (state_* columns, from the whole state: a removed row's generation keys a re-add)
    and, from `contacts_relation` (customer_id, contact_point, consent_status,
    consent_captured_at; one row per customer), what contact_history records of it."""
    ensure_state(con)
    # the diff is computed once, then counted, checked and written; unchanged rows (most rows
    # on most nights) are counted, not carried
    sql = diff_sql(
        sync_id, desired_relation, identifier_column, field_columns, mode,
        withdrawn_relation=withdrawn_relation, changed_only=mode != "delete",
        dialect=dialect_of(con),
    )  # fmt: skip
    if mode == "delete":  # removals only
        sql = f"select *, true as kept from ({sql}) as removals"
    create_temp_table(con, "sync_diff", sql)
    try:
        unchanged = parked = 0
        if mode != "delete":
            desired = con.execute(f"select count(*) from {desired_relation}").fetchone()[0]
            decided, parked = con.execute(
                "select count(*) filter (where action in ('create', 'update')), "
                "count(*) filter (where action = 'parked') from sync_diff"
            ).fetchone()
            unchanged = desired - decided - parked
        counts = dict(
            con.execute(
                "select action, count(*) from sync_diff where kept group by action"
            ).fetchall()
        )
        in_state = con.execute(
            "select count(*) from activation.sync_state where sync_id = ? and status = 'ok'",
            [sync_id],
        ).fetchone()[0]
        removals = counts.get("remove", 0)
        if mode == "mirror" and in_state and removals > max_remove_share * in_state:
            raise MirrorGuardError(
                f"{sync_id}: mirror would remove {removals} of {in_state} rows at the destination "
                f"(more than {max_remove_share:.0%}): the audience looks empty or collapsed; "
                "nothing was planned"
            )
        con.execute(
            "delete from activation.sync_plan where sync_id = ? and plan_id = ?",
            [sync_id, plan_id],
        )
        # in seq (identifier) order, the order it is sent in: a chunk's rows then sit together,
        # so reading and acknowledging a chunk touch only its own row groups of the plan
        planned = _plan_rows_sql(
            sync_id, "(select * from sync_diff where kept)", contacts_relation,
            plan_id=quote_literal(plan_id),
            as_of=f"cast({quote_literal(as_of.isoformat())} as date)",
        )  # fmt: skip
        con.execute(f"insert into activation.sync_plan ({PLAN_COLUMNS}) {planned} order by seq")
    finally:
        con.execute("drop table if exists sync_diff")
    return DiffCounts(counts.get("create", 0), counts.get("update", 0), unchanged, removals, parked)


def pending_plan(con: Connection, sync_id: str) -> tuple[str, dt.date] | None:
    """The (plan_id, as_of) of a plan of this sync that a crash left with unsent rows, if any."""
    ensure_state(con)
    found = con.execute(
        "select plan_id, min(as_of) from activation.sync_plan "
        "where sync_id = ? and outcome is null group by plan_id order by 2 limit 1",
        [sync_id],
    ).fetchall()  # read to the end: DuckDB refuses some calls while a result is unfinished
    return found[0] if found else None


# How an acknowledged plan row changes its state row. The source has the plan row (sync_id,
# identifier, action, row_hash, as_of, customer_id), its state row before (state_row_hash,
# state_attempts, state_created_by_sync, state_customer_id, state_generation; null if none) and
# how it ended (status, error).
_ACKNOWLEDGED_STATE = f"""
{{insert}} into activation.sync_state ({STATE_COLUMNS})
select
    sync_id,
    identifier,
    case when action = 'remove' or status = 'ok' then row_hash else state_row_hash end,
    case
        when action = 'remove' and status = 'ok' then 'removed'
        when {parked_sql("{max_attempts}")} then 'parked'
        else status
    end,
    coalesce(state_attempts, 0) + 1,
    error,
    coalesce(state_created_by_sync, action = 'create'),
    as_of,
    coalesce(customer_id, state_customer_id),
    -- an application the destination acknowledged starts a new generation: the next send of
    -- this identifier gets a new idempotency key even with the same op and fields (a re-add
    -- after a removal is not swallowed as a duplicate); a retry keeps the key
    coalesce(state_generation, 0) + case when status = 'ok' then 1 else 0 end,
    action,
    {rejections_sql()},
    case
        when status = 'rejected' then {_rejected_as()}
        when status <> 'ok' then state_rejected_hash
    end
from {{source}}
"""


def _replace_state_sql(source: str, max_attempts: int, dialect: str) -> str:
    """_ACKNOWLEDGED_STATE replacing each identifier's state row (`source`: a relation, or a
    subquery with its alias). DuckDB: `insert or replace` (of rows sharing an identifier, the
    first read is kept). Elsewhere: `insert … on conflict do update` of every column, from the
    first row of each identifier in seq order (an upsert may not touch a row twice)."""
    if dialect == "duckdb":
        return _ACKNOWLEDGED_STATE.format(
            insert="insert or replace", source=source, max_attempts=max_attempts
        )
    first = (
        f"(select distinct on (identifier) * from {source} "
        "order by identifier, seq, customer_id) as first_rows"
    )
    updates = ", ".join(
        f"{c} = excluded.{c}"
        for c in (c.strip() for c in STATE_COLUMNS.split(","))
        if c not in ("sync_id", "identifier")
    )
    return (
        _ACKNOWLEDGED_STATE.format(insert="insert", source=first, max_attempts=max_attempts)
        + f"on conflict (sync_id, identifier) do update set {updates}\n"
    )


# _ACKNOWLEDGED_STATE for a chunk of distinct identifiers, whatever the state holds now:
# _FIRST_TIME_STATE is the row as if it had no state row (most rows of a first sync, inserted
# as they are); with _ON_CONFLICT_FROM_STATE_NOW, a conflicting row is derived from the state
# row as it is now in place of the state_* columns read before sending, so attempts,
# generation, created_by_sync and a kept row_hash stay right even if it appeared or changed
# since. `insert ... on conflict (...) do update` with `excluded` is also Postgres' syntax.
_FIRST_TIME_STATE = f"""
insert into activation.sync_state ({STATE_COLUMNS})
select
    sync_id,
    identifier,
    case when action = 'remove' or status = 'ok' then row_hash end,
    case
        when action = 'remove' and status = 'ok' then 'removed'
        when status = 'rejected' and {{max_attempts}} <= 1 then 'parked'
        else status
    end,
    1,
    error,
    action = 'create',
    as_of,
    customer_id,
    case when status = 'ok' then 1 else 0 end,
    action,
    case when status = 'rejected' then 1 else 0 end,
    case when status = 'rejected' then {_rejected_as()} end
from {{source}}
{{where}}
"""
# this send rejected: excluded.rejected_hash is set (the first-time row's, never null then)
_REJECTIONS_NOW = """(case
        when excluded.rejected_hash is not null then
            case when sync_state.rejected_hash is not distinct from excluded.rejected_hash
                then coalesce(sync_state.rejections, 0) else 0 end + 1
        when excluded.status in ('ok', 'removed') then 0
        else coalesce(sync_state.rejections, 0)
    end)"""
_ON_CONFLICT_FROM_STATE_NOW = f"""
on conflict (sync_id, identifier) do update set
    row_hash = case
        when excluded.last_action = 'remove' or excluded.status = 'ok' then excluded.row_hash
        else sync_state.row_hash
    end,
    status = case
        when excluded.rejected_hash is null then excluded.status
        when {_REJECTIONS_NOW} >= {{max_attempts}} then 'parked'
        else 'rejected'
    end,
    attempts = sync_state.attempts + 1,
    last_error = excluded.last_error,
    created_by_sync = sync_state.created_by_sync,
    updated_as_of = excluded.updated_as_of,
    customer_id = coalesce(excluded.customer_id, sync_state.customer_id),
    generation = coalesce(sync_state.generation, 0) + excluded.generation,
    last_action = excluded.last_action,
    rejections = {_REJECTIONS_NOW},
    rejected_hash = case
        when excluded.rejected_hash is not null then excluded.rejected_hash
        when excluded.status not in ('ok', 'removed') then sync_state.rejected_hash
    end
"""


_NO_CONTACTS = (
    "(select cast(null as varchar) as customer_id, cast(null as varchar) as contact_point,"
    " cast(null as varchar) as consent_status, cast(null as timestamp) as consent_captured_at"
    " where false)"
)


def _plan_rows_sql(
    sync_id: str,
    source: str,
    contacts_relation: str | None,
    plan_id: str,
    as_of: str,
    outcome: str = "null",
    error: str = "null",
) -> str:
    """SQL of plan rows (PLAN_COLUMNS, in order) for `source`'s rows (identifier, customer_id,
    action, row_hash, fields_json; aliased `planned`), as plan_diff writes them and
    refresh_pending rewrites them: seq, the state row as it is now and the contact point and
    consent from contacts_relation. plan_id, as_of, outcome and error are SQL expressions."""
    return f"""
select
    {quote_literal(sync_id)} as sync_id,
    {plan_id} as plan_id,
    {as_of} as as_of,
    planned.identifier,
    planned.customer_id,
    planned.action,
    planned.row_hash,
    planned.fields_json,
    {outcome} as outcome,
    {error} as error,
    dense_rank() over (order by planned.identifier) as seq,
    state.row_hash as state_row_hash,
    state.attempts as state_attempts,
    state.created_by_sync as state_created_by_sync,
    state.customer_id as state_customer_id,
    coalesce(state.generation, 0) as state_generation,
    contact.contact_point,
    contact.consent_status,
    contact.consent_captured_at,
    coalesce(state.rejections, 0) as state_rejections,
    state.rejected_hash as state_rejected_hash
from {source} as planned
left join activation.sync_state as state
    on state.sync_id = {quote_literal(sync_id)} and planned.identifier = state.identifier
left join {contacts_relation or _NO_CONTACTS} as contact
    on planned.customer_id = contact.customer_id
"""


_OP = "case when {alias}.action = 'remove' then 'delete' else 'upsert' end"


def _key_sql(sync_id: str, alias: str, generation_sql: str, dialect: str = "duckdb") -> str:
    """SQL of the idempotency key a plan row (`alias`: identifier, action, fields_json) is sent
    with, at the given state generation (webhook.idempotency_key_sql)."""
    return idempotency_key_sql(
        sync_id, f"{alias}.identifier", _OP.format(alias=alias), generation_sql,
        f"{alias}.fields_json", dialect,
    )  # fmt: skip


def pending_sql(
    sync_id: str, plan_id: str, pending_only: bool = True, dialect: str = "duckdb"
) -> str:
    """SQL of a plan's pending rows (all its rows if not pending_only), one row per plan row,
    with what plan_diff stored to send and acknowledge them: seq, the state row before sending
    (the state_* columns acknowledge_chunk needs), the contact point and consent, and the op
    ('upsert' or 'delete') and idempotency key it is sent with — computed as the rows are read
    (per chunk), from the plan's own columns: the fields' JSON text as stored, so a resumed row
    is sent with the same key. `dialect`: the warehouse's (the same key on every engine)."""
    return f"""
select
    plan.seq,
    plan.sync_id,
    plan.identifier,
    plan.customer_id,
    plan.action,
    plan.row_hash,
    plan.fields_json,
    plan.as_of,
    plan.state_row_hash,
    plan.state_attempts,
    plan.state_created_by_sync,
    plan.state_customer_id,
    coalesce(plan.state_generation, 0) as state_generation,
    plan.contact_point,
    plan.consent_status,
    plan.consent_captured_at,
    plan.state_rejections,
    plan.state_rejected_hash,
    {_OP.format(alias="plan")} as op,
    {_key_sql(sync_id, "plan", "coalesce(plan.state_generation, 0)", dialect)} as idempotency_key
from activation.sync_plan as plan
where plan.sync_id = {quote_literal(sync_id)} and plan.plan_id = {quote_literal(plan_id)}
    {"and plan.outcome is null" if pending_only else ""}
"""


def refresh_pending(con: Connection, sync_id: str, plan_id: str, contacts_relation: str) -> None:
    """Before a plan a crash left is resumed: its pending rows are written again with seq
    renumbered 1..n (the acknowledged rows left the plan), the state row as it is now and the
    contact point and consent as planned now (contacts_relation, as for plan_diff) — in one
    transaction, so the plan is never half rewritten."""
    where = (
        f"sync_id = {quote_literal(sync_id)} and plan_id = {quote_literal(plan_id)} "
        "and outcome is null"
    )
    con.execute("begin transaction")
    try:
        planned = _plan_rows_sql(
            sync_id, f"(select * from activation.sync_plan where {where})", contacts_relation,
            plan_id="planned.plan_id", as_of="planned.as_of", outcome="planned.outcome",
            error="planned.error",
        )  # fmt: skip
        create_temp_table(con, "sync_resumed", planned)
        con.execute(f"delete from activation.sync_plan where {where}")
        con.execute(
            f"insert into activation.sync_plan ({PLAN_COLUMNS}) "
            "select * from sync_resumed order by seq"
        )
        con.execute("drop table sync_resumed")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def acknowledge_chunk(
    con: Connection,
    sync_id: str,
    plan_id: str,
    chunk: str,
    first_seq: int,
    last_seq: int,
    distinct_identifiers: bool = False,
    upsert: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
) -> None:
    """The state of a chunk of pending rows read with pending_sql before they were sent, and
    the chunk taken out of the plan: `chunk` is a relation with pending_sql's columns plus
    status and error, every pending row of the plan with seq between first_seq and last_seq.
    Acknowledged rows leave the plan (deleted, not updated: cheaper, and what a resume must
    not resend is exactly what is no longer there); how each ended is in sync_state and
    contact_history. Reads no more of the plan than the chunk's own row groups (the plan is
    written in seq order).
    `distinct_identifiers`: the caller knows no two rows of the chunk share an identifier. Rows
    that had no state row when read are then inserted (a first sync: every row), cheaper than an
    upsert; if a state row appeared since (another writer, a plan acknowledged in between) that
    insert fails on the primary key, and the caller redoes the transaction with `upsert`: one
    insert ... on conflict do update for every row, each conflicting row derived from the state
    row as it is then.
    `max_attempts`: a row rejected that many times in a row (same op and fields) is parked."""
    limit = int(max_attempts)
    if not distinct_identifiers:
        con.execute(_replace_state_sql(chunk, limit, dialect_of(con)))
    elif upsert:
        con.execute(
            (_FIRST_TIME_STATE + _ON_CONFLICT_FROM_STATE_NOW).format(
                source=chunk, where="", max_attempts=limit
            )
        )
    else:
        new, known = con.execute(
            f"select count(*) filter (where state_attempts is null), "
            f"count(*) filter (where state_attempts is not null) from {chunk}"
        ).fetchone()
        if new:
            con.execute(
                _FIRST_TIME_STATE.format(
                    source=chunk, where="where state_attempts is null", max_attempts=limit
                )
            )
        if known:
            con.execute(
                (_FIRST_TIME_STATE + _ON_CONFLICT_FROM_STATE_NOW).format(
                    source=chunk, where="where state_attempts is not null", max_attempts=limit
                )
            )
    con.execute(
        "delete from activation.sync_plan where sync_id = ? and plan_id = ? "
        "and outcome is null and seq between ? and ?",
        [sync_id, plan_id, first_seq, last_seq],
    )


def acknowledge(
    con: Connection,
    sync_id: str,
    plan_id: str,
    outcomes: dict[str, tuple[str, str]],
    max_attempts: int = MAX_ATTEMPTS,
) -> None:
    """Record how planned identifiers ended ({identifier: (status, error)}) in sync_state and
    mark them done in the plan — called per chunk, so a crash loses at most one chunk's
    acknowledgements (and those rows are resent with the same idempotency key)."""
    # one statement (the lists travel as parameters), not an insert per row
    create_temp_table(
        con,
        "acknowledged",
        "select unnest(cast(? as varchar[])) as identifier, "
        "unnest(cast(? as varchar[])) as status, unnest(cast(? as varchar[])) as error",
        [
            list(outcomes),
            [status for status, _ in outcomes.values()],
            [error or None for _, error in outcomes.values()],
        ],
    )
    dialect = dialect_of(con)
    source = f"""(
        select plan.*, ack.status, ack.error
        from ({pending_sql(sync_id, plan_id, False, dialect)}) as plan
        inner join acknowledged as ack on plan.identifier = ack.identifier
    ) as acknowledged_plan"""
    con.execute(_replace_state_sql(source, int(max_attempts), dialect))
    con.execute(
        """
        update activation.sync_plan as plan
        set outcome = ack.status, error = ack.error
        from acknowledged as ack
        where plan.sync_id = ? and plan.plan_id = ? and plan.identifier = ack.identifier
        """,
        [sync_id, plan_id],
    )
