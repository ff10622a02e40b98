"""activation.sync_runs and activation.contact_history in their final shape.

contact_history: one row per (sync, as_of, customer) outcome — append-only truth of what was sent
to whom (or why not). sync_runs: one row per sync per pipeline run with the counts.

A diff sync writes its sync_runs row as `running` when it starts and replaces it with the
counts when it ends, so a sync killed mid-run (SIGKILL: no cleanup) leaves its row behind; the
next run of the sync resumes the killed run's plan, marks that row `interrupted` with what the
killed run had recorded, and names it in its own row (`resumed_sync_run_id`).
"""

from __future__ import annotations

import re

from orchestration.engine import Connection

OUTCOMES = ("ok", "rejected", "retryable", "unknown", "held_out", "filtered")

DDL = f"""
create table if not exists activation.contact_history (
    contact_id varchar not null,          -- md5(sync_id | as_of | customer_id | run_id …)
    sync_id varchar not null,
    sync_run_id varchar not null,
    run_id varchar not null,
    destination varchar not null,
    segment_name varchar not null,
    channel varchar not null,
    purpose varchar not null,
    as_of date not null,
    customer_id varchar not null,
    contact_point varchar,                -- PII: lives here so erasure can reach it
    outcome varchar not null check (outcome in ({", ".join(f"'{o}'" for o in OUTCOMES)})),
    is_holdout boolean not null,
    filter_reason varchar,
    error_message varchar,
    consent_status varchar,
    consent_captured_at timestamp,
    consent_snapshot_at timestamp not null, -- when consent_state was read for this decision
    attempts integer not null,
    recorded_at timestamp not null
);
create table if not exists activation.sync_runs (
    sync_run_id varchar not null,
    run_id varchar not null,
    sync_id varchar not null,
    destination varchar not null,
    segment_name varchar not null,
    as_of date not null,
    status varchar not null,
    audience_rows bigint not null,
    planned bigint not null,
    already_sent bigint not null,
    sent bigint not null,
    ok bigint not null,
    rejected bigint not null,
    retryable bigint not null,
    unknown bigint not null,
    held_out bigint not null,
    filtered bigint not null,
    filtered_by_reason json,
    output_uri varchar,
    started_at timestamp not null,
    finished_at timestamp not null,
    duration_seconds double not null
);
alter table activation.sync_runs add column if not exists parked bigint default 0;
alter table activation.sync_runs add column if not exists skipped_parked bigint default 0;
alter table activation.sync_runs add column if not exists resumed_sync_run_id varchar;
-- A/B/n: the treatment arm a sent row went to (null: held out, or a sync without arms)
alter table activation.contact_history add column if not exists arm varchar;
"""


def empty_contact_history_sql() -> str:
    """A relation with contact_history's columns and no rows: what a dry run reads instead of
    the table before any sync ran (grain: none; the planner's joins find nothing)."""
    first = DDL.split("(", 1)[1].split(");", 1)[0]  # contact_history, the DDL's first table
    columns = re.findall(r"^\s+(\w+) (\w+)", first, flags=re.MULTILINE)
    return "(select " + ", ".join(f"cast(null as {t}) as {c}" for c, t in columns) + " where false)"


def ensure_tables(con: Connection) -> None:
    con.execute("create schema if not exists activation")
    con.execute(DDL)
