"""The planner: per sync, every audience row gets an outcome decided in SQL, consent-checked.

Order of decisions for each segment member (one row per customer):
1. already recorded for this sync and as_of as delivered, held out or filtered → skipped
   (idempotent rerun, nothing resent; a failed write is retried);
2. no contact point for the channel, erased, no consent record, revoked, expired or suppressed
   → `filtered` with that reason (consent from consent_state only, every row, every run);
3. holdout member (of the consented audience) → `held_out`, recorded, never sent — the
   segment's holdout, and for a sync with A/B/n arms also the members past its last arm;
4. otherwise → to send, with the member's arm (`arm`, null without arms; arms.py).
"""

from __future__ import annotations

import datetime as dt

from orchestration.activation.arms import ARM_FIELD
from orchestration.activation.sync_definition import SyncDefinition
from orchestration.contracts.rules_sql import quote_ident, quote_literal
from orchestration.engine import Connection, create_temp_table, dialect_of

# a temp table (this connection's, in memory): the consent-checked audience is read only by the
# run that builds it, and a million rows written to the warehouse file only to be dropped cost
# about as much as checking them
PLAN_TABLE = "plan_current"


def plan_sql(
    sync: SyncDefinition,
    as_of: dt.date,
    skip_recorded: bool = True,
    members_sql: str | None = None,
    dialect: str = "duckdb",
) -> str:
    """`skip_recorded`: leave out customers already recorded for this sync and as_of (file drops;
    diff-based syncs need the whole audience and let the state decide). `members_sql` replaces the
    segment's members (customer_id, is_holdout) — e.g. everyone a sync holds at its destination,
    to find who must be removed because consent was withdrawn. `dialect`: the warehouse's
    (engine.dialect_of), for the arm hash."""
    contact = quote_ident(sync.contact_column)
    arm = sync.arm_sql("m.customer_id", dialect)
    fields = ", ".join(
        f"{arm if col == ARM_FIELD and sync.arms else 'c.' + quote_ident(col)} "
        f"as {quote_ident('f_' + name)}"
        for name, col in sync.fields.items()
    )
    # with arms, the members past the last arm are held out by the sync too
    held = f"(m.is_holdout or {arm} is null)" if sync.arms else "m.is_holdout"
    arm_column = f"case when {held} then null else {arm} end"
    return f"""
with members as (
    {members_sql or _segment_members(sync)}
),

audience as (
    select m.customer_id, {held} as is_holdout, {arm_column} as arm,
        c.{contact} as contact_point, c.is_erased, {fields}
    from members as m
    inner join marts.customer_360 as c on m.customer_id = c.customer_id
),

with_consent as (
    select
        a.*,
        s.consent_status,
        s.consent_captured_at,
        s.is_expired,
        s.is_suppressed,
        s.is_consented
    from audience as a
    left join marts.consent_state as s
        on a.contact_point = s.contact_point
        and s.channel = {quote_literal(sync.channel)}
        and s.purpose = {quote_literal(sync.purpose)}
),

already as (
    select customer_id from activation.contact_history
    where sync_id = {quote_literal(sync.name)} and as_of = {quote_literal(as_of.isoformat())}
        and outcome in ('ok', 'held_out', 'filtered')  -- a failed write is retried
)

select
    w.*,
    case
        when w.contact_point is null then 'no_contact_point'
        when w.is_erased then 'erased'
        when w.consent_status is null then 'no_consent'
        when w.is_suppressed then 'suppressed'
        when w.consent_status <> 'granted' then 'consent_revoked'
        when w.is_expired then 'consent_expired'
        when not w.is_consented then 'not_consented'
    end as filter_reason
from with_consent as w
{"where w.customer_id not in (select customer_id from already)" if skip_recorded else ""}
"""


def withdrawn_sql(sync: SyncDefinition, as_of: dt.date, dialect: str = "duckdb") -> str:
    """Identifiers this sync holds or may hold at its destination (any state but removed: a
    send that ended unknown may have been applied, a removal that failed must be retried) whose
    person may no longer be contacted on the sync's channel and purpose — any consent filter
    reason, in or out of the segment. Diff syncs remove them in every mode."""
    members = (
        "select distinct customer_id, false as is_holdout from activation.sync_state "
        f"where sync_id = {quote_literal(sync.name)} and status <> 'removed' "
        "and customer_id is not null"
    )
    return (
        "select identifier from activation.sync_state "
        f"where sync_id = {quote_literal(sync.name)} and status <> 'removed' and customer_id in "
        f"(select customer_id from ({plan_sql(sync, as_of, False, members, dialect)}) as p "
        "where p.filter_reason is not null)"
    )


def _segment_members(sync: SyncDefinition) -> str:
    return (
        f"select customer_id, is_holdout from {sync.audience_table} "
        f"where segment_name = {quote_literal(sync.segment)}"
    )


def build_plan(
    con: Connection, sync: SyncDefinition, as_of: dt.date, skip_recorded: bool = True
) -> dict[str, int]:
    """Write the plan for one sync to the temp table plan_current (one row per audience
    member); return counts by decision."""
    sql = plan_sql(sync, as_of, skip_recorded, dialect=dialect_of(con))
    create_temp_table(con, PLAN_TABLE, sql)
    rows = con.execute(
        f"select case when filter_reason is not null then 'filtered' "
        f"when is_holdout then 'held_out' else 'send' end, count(*) from {PLAN_TABLE} group by 1"
    ).fetchall()
    return {k: v for k, v in rows}
