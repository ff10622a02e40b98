"""Next-best action per customer: `marts.next_best_action` and its audience `marts.action_membership`.

Grain of `marts.next_best_action`: one row per customer x action whose eligibility rule holds at
as_of (key: customer_id, action_name), rebuilt per run like the other insight marts. Each row
carries the action's channel, purpose, priority and expected value, the eligibility flags
(contact point, consent for the channel and purpose from consent_state, suppression, erasure,
the segments' global exclusion, frequency cap and cooldown from activation.contact_history,
holdout), `action_rank` among the customer's actions (sendable first, then priority, then
expected value), `is_next_best` (rank 1 and sendable), reason codes, and `send_at`: the next
occurrence of the customer's best hour of the week (marts.customer_send_time) from local midnight
after as_of, in the customer's time zone and in UTC.

`marts.action_membership` (a view) is the audience a sync names with `action: <name>`: one row per
customer whose next-best action it is, in the shape of segment_membership (customer_id,
segment_name = 'action:<name>', is_holdout, as_of), so the activation planner reads it as it reads
a segment and checks consent again on every row.

Eligibility is compiled by the segment compiler (orchestration/segments/compiler.py) and rendered
by the sandboxed renderer the segment CLI uses (orchestration/segments/render.py): the action
YAML is data, never a template, and adding an action is one YAML file (no generated SQL).
Contacts counted from contact_history are those of nights before as_of (outcome ok or unknown):
the night's own sends are written after this asset, so a rerun of a night leaves the mart as it
was.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from orchestration.activation.sync_definition import CHANNEL_CONTACT_COLUMN
from orchestration.contracts.rules_sql import nonnull_list_sql, quote_literal
from orchestration.engine import (
    Connection,
    dialect_of,
    replace_table,
    replace_view,
    table_exists,
    utc_of_local_sql,
)
from orchestration.insight.next_best_action_model import (
    ACTION_PREFIX,
    VALUE_MODELS,
    Action,
    ActionRules,
    load_all,
    load_rules,
)
from orchestration.segments.compiler import Conditions, condition_sql
from orchestration.segments.model import GlobalRules, load_global
from orchestration.segments.preview import Renderer

TABLE = "marts.next_best_action"
AUDIENCE_VIEW = "marts.action_membership"
# Tuesday 10:00 local: used only when customer_send_time has neither the customer nor a recorded
# population-best hour (the send-time asset writes both every night)
DEFAULT_HOUR_OF_WEEK = 34
CONTACT_OUTCOMES = ("ok", "unknown")  # an unknown send may have reached the person
BLOCKING_REASONS = (
    "no_contact_point", "erased", "no_consent", "suppressed", "consent_revoked",
    "consent_expired", "not_consented", "global_exclusion", "frequency_cap", "cooldown",
)  # fmt: skip


def eligibility_sql(action: Action, rules: GlobalRules | None) -> str:
    """Compiled (dbt-Jinja) SQL: customer_id, action_name, is_excluded for every customer meeting
    the action's eligibility rule; is_excluded: the segments' global exclusion holds."""
    conditions = Conditions()
    rule = f"coalesce({condition_sql(action.eligibility, conditions)}, false)"
    excluded = (
        f"coalesce({condition_sql(rules.exclude, conditions)}, false)"
        if rules is not None and rules.exclude
        else "false"
    )
    return (
        "with customers as (\n    select * from {{ ref('customer_360') }}\n),\n\n"
        + conditions.sql()
        + "answer as (\n    select\n        customers.customer_id,\n"
        + f"        {quote_literal(action.name)} as action_name,\n"
        + f"        {excluded} as is_excluded\n    from customers"
        + conditions.joins()
        + f"\n    where {rule}\n)\n\nselect * from answer\n"
    )


def value_sql(action: Action) -> str:
    """The action's expected value from its allow-listed model, parameters as literals; the
    fallback when a trait the model needs is null."""
    model = VALUE_MODELS[action.value_model]
    params = {k: repr(float(v)) for k, v in action.value_parameters.items()}
    expression = model.expression.format(**params)
    if not model.needs:
        return f"({expression})"
    missing = " or ".join(f"{column} is null" for column in model.needs)
    return f"(case when {missing} then {params['fallback']} else {expression} end)"


def fallback_sql(action: Action) -> str:
    model = VALUE_MODELS[action.value_model]
    return " or ".join(f"{c} is null" for c in model.needs) if model.needs else "false"


def _case(actions: list[Action], expression: Any, default: str = "null") -> str:
    whens = "".join(
        f"\n            when {quote_literal(a.name)} then {expression(a)}" for a in actions
    )
    return f"case eligible.action_name{whens}\n            else {default}\n        end"


def population_best_hour(con: Connection, as_of: dt.date) -> int:
    """The population's best hour of the week recorded by the send-time run of as_of."""
    if table_exists(con, "audit", "send_time_evals"):
        row = con.execute(
            "select population_best_hour from audit.send_time_evals "
            "where as_of = ? and population_best_hour is not null "
            "order by evaluated_at desc limit 1",
            [as_of],
        ).fetchone()
        if row is not None:
            return int(row[0])
    return DEFAULT_HOUR_OF_WEEK


def _history_sql(con: Connection, as_of: dt.date) -> str:
    if not table_exists(con, "activation", "contact_history"):
        return (
            "select cast(null as varchar) as customer_id, cast(null as varchar) as sync_id, "
            "cast(null as varchar) as segment_name, cast(null as date) as as_of where false"
        )
    outcomes = ", ".join(quote_literal(o) for o in CONTACT_OUTCOMES)
    return (
        "select customer_id, sync_id, segment_name, as_of from activation.contact_history "
        f"where outcome in ({outcomes}) and as_of < {_date(as_of)}"
    )


def _date(day: dt.date) -> str:
    return f"cast('{day.isoformat()}' as date)"


def mart_sql(
    actions: list[Action],
    rules: ActionRules,
    as_of: dt.date,
    history_sql: str,
    population_hour: int,
    dialect: str = "duckdb",
) -> str:
    """The query behind marts.next_best_action over the temp table nba_eligible (one row per
    customer and action whose rule holds). Rendered by the segment renderer (hash_bucket)."""
    start = as_of + dt.timedelta(days=1)  # local midnight after as_of: the night's run is after it
    cap = rules.frequency_cap
    cap_days = cap.within_days if cap else 0
    cap_max = cap.max_contacts if cap else 0
    contact = _case(actions, lambda a: f"customers.{CHANNEL_CONTACT_COLUMN[a.channel]}")
    reason_codes = nonnull_list_sql(
        [
            "case when is_sendable and action_rank = 1 then 'next_best' "
            "when is_sendable then 'outranked' else 'blocked' end",
            "consent_reason",
            "case when is_excluded then 'global_exclusion' end",
            "case when is_frequency_capped then 'frequency_cap' end",
            "case when is_in_cooldown then 'cooldown' end",
            "case when is_holdout then 'holdout' end",
            "case when is_value_fallback then 'value_fallback' end",
            "case when has_personal_hour then 'send_time_personal' else 'send_time_population' end",
        ],
        dialect,
    )
    return f"""
with eligible as (
    select * from nba_eligible
),

customers as (
    select * from marts.customer_360
),

clv as (
    select * from marts.customer_clv
),

send_time as (
    select * from marts.customer_send_time
),

consent as (
    select * from marts.consent_state
),

history as (
    {history_sql}
),

recent_contacts as (
    -- frequency cap: distinct (sync, night) contacts in the {cap_days} nights before as_of
    select
        customer_id,
        count(distinct sync_id || '|' || cast(as_of as varchar)) as contacts
    from history
    where as_of >= {_date(as_of)} - {cap_days}
    group by customer_id
),

last_sent as (
    select
        customer_id,
        segment_name,
        max(as_of) as last_sent_as_of
    from history
    where starts_with(segment_name, {quote_literal(ACTION_PREFIX)})
    group by customer_id, segment_name
),

candidates as (
    select
        eligible.customer_id,
        eligible.action_name,
        {_case(actions, lambda a: quote_literal(a.channel))} as channel,
        {_case(actions, lambda a: quote_literal(a.purpose))} as purpose,
        {_case(actions, lambda a: str(a.priority))} as priority,
        {_case(actions, lambda a: quote_literal(a.value_model))} as value_model,
        {_case(actions, lambda a: str(a.cooldown_days))} as cooldown_days,
        {_case(actions, lambda a: str(round(a.holdout * 10000)))} as holdout_threshold,
        cast({_case(actions, value_sql)} as double) as expected_value,
        {_case(actions, fallback_sql, "false")} as is_value_fallback,
        {contact} as contact_point,
        coalesce(customers.is_erased, false) as is_customer_erased,
        eligible.is_excluded,
        coalesce(customers.time_zone, 'UTC') as time_zone,
        send_time.best_hour_of_week as personal_hour,
        coalesce(send_time.n_events, 0) > 0 as has_personal_hour,
        send_time.confidence_level as send_time_confidence,
        coalesce(recent_contacts.contacts, 0) as recent_contacts,
        last_sent.last_sent_as_of
    from eligible
    inner join customers on eligible.customer_id = customers.customer_id
    left join clv on eligible.customer_id = clv.customer_id
    left join send_time on eligible.customer_id = send_time.customer_id
    left join recent_contacts on eligible.customer_id = recent_contacts.customer_id
    left join last_sent
        on eligible.customer_id = last_sent.customer_id
        and last_sent.segment_name = {quote_literal(ACTION_PREFIX)} || eligible.action_name
),

with_consent as (
    select
        candidates.*,
        consent.consent_status,
        coalesce(consent.is_suppressed, false) as is_suppressed,
        coalesce(consent.is_expired, false) as is_expired,
        coalesce(consent.is_consented, false) as is_consented,
        candidates.is_customer_erased or coalesce(consent.is_erased, false) as is_erased
    from candidates
    left join consent
        on candidates.contact_point = consent.contact_point
        and candidates.channel = consent.channel
        and candidates.purpose = consent.purpose
),

flagged as (
    select
        *,
        -- the planner's order of consent reasons (orchestration/activation/planner.py)
        case
            when contact_point is null then 'no_contact_point'
            when is_erased then 'erased'
            when consent_status is null then 'no_consent'
            when is_suppressed then 'suppressed'
            when consent_status <> 'granted' then 'consent_revoked'
            when is_expired then 'consent_expired'
            when not is_consented then 'not_consented'
        end as consent_reason,
        {"true" if cap else "false"} and recent_contacts >= {cap_max} as is_frequency_capped,
        coalesce(date_diff('day', last_sent_as_of, {_date(as_of)}) < cooldown_days, false) as is_in_cooldown,
        {{{{ hash_bucket("customer_id || ':action:' || action_name") }}}} < holdout_threshold
            as is_holdout,
        coalesce(personal_hour, {population_hour}) as best_hour_of_week
    from with_consent
),

sendable as (
    select
        *,
        consent_reason is null
        and not is_excluded
        and not is_frequency_capped
        and not is_in_cooldown as is_sendable
    from flagged
),

ranked as (
    select
        *,
        row_number() over (
            partition by customer_id
            order by is_sendable desc, priority asc, expected_value desc nulls last, action_name
        ) as action_rank
    from sendable
),

slots as (
    -- send times per (zone, hour of the week): few distinct pairs, so the time-zone arithmetic
    -- runs once per pair, not once per row
    select
        time_zone,
        best_hour_of_week,
        local_at as send_at_local,
        {utc_of_local_sql("local_at", "time_zone", dialect)} as send_at_utc
    from (
        select distinct
            time_zone,
            best_hour_of_week,
            cast('{start.isoformat()}' as timestamp)
            + to_days(cast((best_hour_of_week // 24 - {start.weekday()} + 7) % 7 as integer))
            + to_hours(cast(best_hour_of_week % 24 as integer)) as local_at
        from ranked
    ) as local_slots
),

timed as (
    select
        ranked.*,
        slots.send_at_local,
        slots.send_at_utc
    from ranked
    inner join slots
        on ranked.time_zone = slots.time_zone
        and ranked.best_hour_of_week = slots.best_hour_of_week
),

final as (
    select
        customer_id,
        action_name,
        channel,
        purpose,
        priority,
        cast(action_rank as integer) as action_rank,
        is_sendable and action_rank = 1 as is_next_best,
        is_sendable,
        round(expected_value, 4) as expected_value,
        value_model,
        contact_point is not null as has_contact_point,
        is_consented,
        is_suppressed,
        is_erased,
        is_excluded,
        is_frequency_capped,
        is_in_cooldown,
        is_holdout,
        cast(recent_contacts as integer) as recent_contacts,
        last_sent_as_of,
        {reason_codes} as reason_codes,
        cast(best_hour_of_week as integer) as best_hour_of_week,
        case when has_personal_hour then 'personal' else 'population' end as send_time_source,
        send_time_confidence,
        time_zone,
        send_at_local,
        send_at_utc,
        {_date(as_of)} as as_of
    from timed
)

select * from final
order by customer_id, action_rank
"""


@dataclass
class NbaRun:
    """What one run wrote: rows, customers with a next-best action, per-action counts."""

    rows: int = 0
    customers_with_action: int = 0
    population_hour: int = DEFAULT_HOUR_OF_WEEK
    per_action: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def metadata(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "customers_with_next_best_action": self.customers_with_action,
            "population_best_hour": self.population_hour,
            "actions": self.per_action,
            "seconds": round(self.seconds, 3),
        }


def run(
    con: Connection,
    as_of: dt.date,
    actions: list[Action] | None = None,
    rules: ActionRules | None = None,
    segment_rules: GlobalRules | None = None,
) -> NbaRun:
    """Replace marts.next_best_action (one row per customer x action whose rule holds at as_of)
    and (re)create the view marts.action_membership. Defaults: the YAML in dbt_project/actions/
    and the segments' global rules."""
    started = time.perf_counter()
    actions = load_all() if actions is None else actions
    rules = load_rules() if rules is None else rules
    segment_rules = load_global() if segment_rules is None else segment_rules
    renderer = Renderer(con, as_of)
    population_hour = population_best_hour(con, as_of)
    con.execute("create schema if not exists marts")
    con.execute("drop table if exists nba_eligible")
    con.execute(
        "create temp table nba_eligible "
        "(customer_id varchar, action_name varchar, is_excluded boolean)"
    )
    for action in actions:
        con.execute(
            "insert into nba_eligible " + renderer.render(eligibility_sql(action, segment_rules))
        )
    body = (
        mart_sql(actions, rules, as_of, _history_sql(con, as_of), population_hour, dialect_of(con))
        if actions
        else _empty_sql(as_of)
    )
    con.execute("begin")
    try:
        replace_table(con, TABLE, renderer.render(body))
        replace_view(
            con,
            AUDIENCE_VIEW,
            f"""
            select
                customer_id,
                {quote_literal(ACTION_PREFIX)} || action_name as segment_name,
                is_holdout,
                as_of
            from {TABLE}
            where is_next_best
            """,
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.execute("drop table if exists nba_eligible")
    out = NbaRun(population_hour=population_hour)
    out.rows = con.execute(f"select count(*) from {TABLE}").fetchone()[0]
    out.customers_with_action = con.execute(
        f"select count(*) from {TABLE} where is_next_best"
    ).fetchone()[0]
    for name, eligible, sendable, best, held in con.execute(
        f"select action_name, count(*), count(*) filter (where is_sendable), "
        f"count(*) filter (where is_next_best), count(*) filter (where is_next_best and is_holdout) "
        f"from {TABLE} group by 1 order by 1"
    ).fetchall():
        out.per_action[name] = {
            "eligible": eligible,
            "sendable": sendable,
            "next_best": best,
            "next_best_held_out": held,
        }
    counts = ", ".join(
        f"count(*) filter (where list_contains(reason_codes, {quote_literal(r)}))"
        for r in BLOCKING_REASONS
    )
    for name, *blocked in con.execute(
        f"select action_name, {counts} from {TABLE} group by 1 order by 1"
    ).fetchall():
        reasons = {r: n for r, n in zip(BLOCKING_REASONS, blocked, strict=True) if n}
        if reasons:
            out.per_action[name]["blocked_by"] = reasons
    for action in actions:
        out.per_action.setdefault(action.name, {"eligible": 0})
    out.seconds = time.perf_counter() - started
    return out


def _empty_sql(as_of: dt.date) -> str:
    """The mart's shape with no rows (no action defined)."""
    return (
        "select cast(null as varchar) as customer_id, cast(null as varchar) as action_name, "
        "cast(null as varchar) as channel, cast(null as varchar) as purpose, "
        "cast(null as integer) as priority, cast(null as integer) as action_rank, "
        "false as is_next_best, false as is_sendable, cast(null as double) as expected_value, "
        "cast(null as varchar) as value_model, false as has_contact_point, "
        "false as is_consented, false as is_suppressed, false as is_erased, "
        "false as is_excluded, false as is_frequency_capped, false as is_in_cooldown, "
        "false as is_holdout, cast(null as integer) as recent_contacts, "
        "cast(null as date) as last_sent_as_of, cast([] as varchar[]) as reason_codes, "
        "cast(null as integer) as best_hour_of_week, cast(null as varchar) as send_time_source, "
        "cast(null as varchar) as send_time_confidence, "
        "cast(null as varchar) as time_zone, cast(null as timestamp) as send_at_local, "
        f"cast(null as timestamp) as send_at_utc, {_date(as_of)} as as_of where false"
    )
