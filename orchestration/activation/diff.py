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

The plan is written to `activation.sync_plan` before anything is sent and acknowledged chunk by
chunk, so a crashed run resumes from its pending rows (re-checking consent when it does).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from orchestration.contracts.rules_sql import quote_ident, quote_literal

STATE_DDL = """
create schema if not exists activation;
create table if not exists activation.sync_state (
    sync_id varchar not null,
    identifier varchar not null,
    row_hash varchar,
    status varchar not null,      -- ok, rejected, retryable, unknown, removed
    attempts integer not null,
    last_error varchar,
    created_by_sync boolean not null,
    updated_as_of date not null,
    customer_id varchar,          -- who the row is (contact_history of a removal names them)
    primary key (sync_id, identifier)
);
alter table activation.sync_state add column if not exists customer_id varchar;
create table if not exists activation.sync_plan (
    sync_id varchar not null,
    plan_id varchar not null,     -- the sync run that wrote the plan
    as_of date not null,
    identifier varchar not null,
    customer_id varchar,
    action varchar not null,      -- create, update, remove
    row_hash varchar,
    fields_json varchar,
    outcome varchar,              -- null while pending; ok/rejected/retryable/unknown, or dropped
    error varchar
);
"""

# the plan table's shape before plans could be resumed; a plan is transient, so it is recreated
_OLD_PLAN_CHECK = (
    "select count(*) from information_schema.columns where table_schema = 'activation' "
    "and table_name = 'sync_plan' and column_name = 'plan_id'"
)

STATE_COLUMNS = (
    "sync_id, identifier, row_hash, status, attempts, last_error, created_by_sync, "
    "updated_as_of, customer_id"
)
# the state of a sync that never ran, for read-only previews
EMPTY_STATE = (
    "(select cast(null as varchar) as sync_id, cast(null as varchar) as identifier,"
    " cast(null as varchar) as row_hash, cast(null as varchar) as status,"
    " 0 as attempts, cast(null as varchar) as last_error, false as created_by_sync,"
    " cast(null as date) as updated_as_of, cast(null as varchar) as customer_id where false)"
)


class MirrorGuardError(RuntimeError):
    """A mirror sync's removals pass the configured share: the audience looks collapsed."""


@dataclass(frozen=True)
class DiffCounts:
    create: int
    update: int
    unchanged: int
    remove: int


def ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    """Create the state and plan tables (and bring an older plan table to the current shape)."""
    con.execute("create schema if not exists activation")
    if (
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'activation' and table_name = 'sync_plan'"
        ).fetchone()[0]
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
) -> str:
    """SQL of the plan (identifier, customer_id, action, row_hash, fields_json) for one sync.
    `desired_relation` has one row per identifier to have at the destination: the identifier
    column, customer_id and the fields. `withdrawn_relation` (column `identifier`): rows held at
    the destination whose person may no longer be contacted (consent withdrawn, suppressed,
    erased) — removed in every mode, like ids a merge retired."""
    ident = quote_ident(identifier_column)
    fields = " || chr(31) || ".join(
        f"coalesce(cast(desired.{quote_ident(c)} as varchar), chr(0))" for c in field_columns
    )
    json_fields = ", ".join(f"{quote_literal(c)}, desired.{quote_ident(c)}" for c in field_columns)
    removable = "state.created_by_sync" if mode == "mirror" else "false"
    if mode == "delete":
        # delete mode: every audience member this sync holds at the destination is removed
        return f"""
with desired as (
    select distinct cast(desired.{ident} as varchar) as identifier
    from {desired_relation} as desired
)

select
    state.identifier,
    state.customer_id,
    'remove' as action,
    state.row_hash,
    cast(null as varchar) as fields_json
from {state_relation} as state
inner join desired on state.identifier = desired.identifier
where state.sync_id = {quote_literal(sync_id)} and state.status = 'ok'
"""
    return f"""
with desired as (
    select
        cast(desired.{ident} as varchar) as identifier,
        desired.customer_id,
        md5({fields or "''"}) as row_hash,
        cast(json_object({json_fields}) as varchar) as fields_json
    from {desired_relation} as desired
),

state as (
    select * from {state_relation}
    where sync_id = {quote_literal(sync_id)} and status <> 'removed'
),

retired as (
    select retired_customer_id as identifier from marts.customer_id_history
    union all
    {
        f"select identifier from {withdrawn_relation}"
        if withdrawn_relation
        else "select cast(null as varchar) as identifier where false"
    }
),

decided as (
    select
        desired.identifier,
        desired.customer_id,
        case
            when state.identifier is null then 'create'
            when state.row_hash is distinct from desired.row_hash then 'update'
            when state.status <> 'ok' then 'update'
            else 'unchanged'
        end as action,
        desired.row_hash,
        desired.fields_json,
        false as forced
    from desired
    left join state on desired.identifier = state.identifier
    union all
    select
        state.identifier,
        state.customer_id,
        'remove' as action,
        state.row_hash,
        null as fields_json,
        state.identifier in (select identifier from retired) as forced
    from state
    left join desired on state.identifier = desired.identifier
    where
        desired.identifier is null
        and state.status = 'ok'
        and ({removable} or state.identifier in (select identifier from retired))
)

select identifier, customer_id, action, row_hash, fields_json from decided
where forced or {_MODE_FILTER.get(mode, "true")}
"""


def plan_diff(
    con: duckdb.DuckDBPyConnection,
    sync_id: str,
    plan_id: str,
    as_of: dt.date,
    desired_relation: str,
    identifier_column: str,
    field_columns: list[str],
    mode: str = "upsert",
    max_remove_share: float = 0.2,
    withdrawn_relation: str | None = None,
) -> DiffCounts:
    """Write the plan `plan_id` of one sync to activation.sync_plan (every row pending) and return
    the counts; raise MirrorGuardError before writing a collapsed plan."""
    ensure_state(con)
    sql = diff_sql(
        sync_id, desired_relation, identifier_column, field_columns, mode,
        withdrawn_relation=withdrawn_relation,
    )  # fmt: skip
    counts = dict(con.execute(f"select action, count(*) from ({sql}) group by action").fetchall())
    in_state = con.execute(
        "select count(*) from activation.sync_state where sync_id = ? and status = 'ok'", [sync_id]
    ).fetchone()[0]
    removals = counts.get("remove", 0)
    if mode == "mirror" and in_state and removals > max_remove_share * in_state:
        raise MirrorGuardError(
            f"{sync_id}: mirror would remove {removals} of {in_state} rows at the destination "
            f"(more than {max_remove_share:.0%}): the audience looks empty or collapsed; "
            "nothing was planned"
        )
    con.execute(
        "delete from activation.sync_plan where sync_id = ? and plan_id = ?", [sync_id, plan_id]
    )
    con.execute(
        f"insert into activation.sync_plan select {quote_literal(sync_id)}, "
        f"{quote_literal(plan_id)}, cast({quote_literal(as_of.isoformat())} as date), identifier, "
        f"customer_id, action, row_hash, fields_json, null, null "
        f"from ({sql}) where action <> 'unchanged'"
    )
    return DiffCounts(
        counts.get("create", 0), counts.get("update", 0), counts.get("unchanged", 0), removals
    )


def pending_plan(con: duckdb.DuckDBPyConnection, sync_id: str) -> tuple[str, dt.date] | None:
    """The (plan_id, as_of) of a plan of this sync that a crash left with unsent rows, if any."""
    ensure_state(con)
    return con.execute(
        "select plan_id, min(as_of) from activation.sync_plan "
        "where sync_id = ? and outcome is null group by plan_id order by 2 limit 1",
        [sync_id],
    ).fetchone()


def acknowledge(
    con: duckdb.DuckDBPyConnection,
    sync_id: str,
    plan_id: str,
    outcomes: dict[str, tuple[str, str]],
) -> None:
    """Record how planned identifiers ended ({identifier: (status, error)}) in sync_state and
    mark them done in the plan — called per chunk, so a crash loses at most one chunk's
    acknowledgements (and those rows are resent with the same idempotency key)."""
    rows = [(identifier, status, error or None) for identifier, (status, error) in outcomes.items()]
    con.execute(
        "create or replace temp table acknowledged (identifier varchar, status varchar, error varchar)"
    )
    if rows:
        con.executemany("insert into acknowledged values (?, ?, ?)", rows)
    con.execute(
        f"""
        insert or replace into activation.sync_state ({STATE_COLUMNS})
        select
            plan.sync_id,
            plan.identifier,
            case when plan.action = 'remove' or ack.status = 'ok' then plan.row_hash
                else state.row_hash end,
            case when plan.action = 'remove' and ack.status = 'ok' then 'removed'
                else ack.status end,
            coalesce(state.attempts, 0) + 1,
            ack.error,
            coalesce(state.created_by_sync, plan.action = 'create'),
            plan.as_of,
            coalesce(plan.customer_id, state.customer_id)
        from activation.sync_plan as plan
        inner join acknowledged as ack on plan.identifier = ack.identifier
        left join activation.sync_state as state
            on plan.sync_id = state.sync_id and plan.identifier = state.identifier
        where plan.sync_id = ? and plan.plan_id = ?
        """,
        [sync_id, plan_id],
    )
    con.execute(
        """
        update activation.sync_plan as plan
        set outcome = ack.status, error = ack.error
        from acknowledged as ack
        where plan.sync_id = ? and plan.plan_id = ? and plan.identifier = ack.identifier
        """,
        [sync_id, plan_id],
    )
