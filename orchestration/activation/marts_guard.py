"""Activation reads one consistent night: every mart it sends from was last built, completely,
for the as_of being activated (audit.dbt_model_builds, written by dbt's run hooks). A dbt build
killed halfway, or marts of two different days, refuse the send instead of mixing them."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from orchestration.contracts.rules_sql import quote_literal
from orchestration.engine import Connection, table_exists

# What the syncs read: audience membership, the golden record, consent, and id history.
ACTIVATION_MARTS = ("segment_membership", "customer_360", "consent_state", "customer_id_history")


class MartsNotConsistent(RuntimeError):
    """The marts activation reads were not all built, completely, for this as_of."""


def check_marts_built_for(
    con: Connection, as_of: dt.date, marts: tuple[str, ...] = ACTIVATION_MARTS
) -> None:
    """Raise MartsNotConsistent naming each mart whose latest build is not a finished, successful
    build for `as_of` (grain of the check: the latest build row per mart)."""
    if not table_exists(con, "audit", "dbt_model_builds"):
        raise MartsNotConsistent(
            "no record of a dbt build in this warehouse (audit.dbt_model_builds): run the "
            "nightly job before activating"
        )
    names = ", ".join(quote_literal(m) for m in marts) or "cast(null as varchar)"
    # the latest build row per mart (a window in a subquery: SQL every engine runs)
    latest = {
        name: (built_for, status, run_id)
        for name, built_for, status, run_id in con.execute(
            f"""
            select model_name, as_of, status, run_id
            from (
                select
                    model_name, as_of, status, run_id,
                    row_number() over (partition by model_name order by started_at desc) as n
                from audit.dbt_model_builds
                where model_name in ({names})
            ) as builds
            where n = 1
            """
        ).fetchall()
    }
    problems = []
    for name in marts:
        if name not in latest:
            problems.append(f"marts.{name} was never built")
            continue
        built_for, status, run_id = latest[name]
        if status == "started":
            problems.append(
                f"marts.{name}: its last build (as_of {built_for}, run {run_id}) never finished"
            )
        elif status != "success":
            problems.append(f"marts.{name}: its last build (as_of {built_for}) ended {status}")
        elif built_for != as_of:
            problems.append(f"marts.{name} was last built for as_of {built_for}")
    if problems:
        raise MartsNotConsistent(
            f"activation for as_of {as_of} refused, the marts are not one complete night: "
            + "; ".join(problems)
        )


def refuse_mixed_marts(con: Connection, as_of: dt.date) -> None:
    """The activation assets' gate: a Dagster failure with the reason, nothing sent."""
    try:
        check_marts_built_for(con, as_of)
    except MartsNotConsistent as exc:
        raise dg.Failure(description=str(exc)) from exc
