"""Next-best action (orchestration/insight/next_best_action*.py) on a scratch DuckDB whose marts
are written by hand: eligibility through the segment compiler, ranking, expected value per value
model, consent / suppression / erasure / global exclusion / frequency cap / cooldown / holdout
flags and reason codes, send_at across time zones and a daylight-saving change (checked against
zoneinfo), rerun idempotence, the audience view read by the activation planner; and the YAML
validation of actions and of syncs that name an action (file, line, field)."""

from __future__ import annotations

import datetime as dt
import hashlib
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from orchestration.activation.planner import PLAN_TABLE, build_plan
from orchestration.activation.records import ensure_tables
from orchestration.activation.sync_definition import SyncDefinitionError
from orchestration.activation.syncs import load_sync
from orchestration.insight import next_best_action as nba
from orchestration.insight.next_best_action_model import (
    ActionError,
    load_action,
    load_all,
    load_rules,
)

AS_OF = dt.date(2026, 10, 24)  # a Saturday: the next day is the end of summer time in Europe

PUSH = """
name: win_back_push
description: Lapsing high-value customers, by push.
eligibility:
  all:
    - trait: lifetime_revenue
      gte: 500
    - trait: days_since_last_order
      between: [60, 365]
channel: push
purpose: marketing
value:
  model: win_back
  rate: 0.08
  fallback: 5
cooldown_days: 14
priority: 1
"""
EMAIL = """
name: win_back_email
description: The same by email.
eligibility:
  all:
    - trait: lifetime_revenue
      gte: 500
    - trait: days_since_last_order
      between: [60, 365]
channel: email
purpose: marketing
value:
  model: win_back
  rate: 0.05
cooldown_days: 14
priority: 2
"""
GLOBAL = """
frequency_cap:
  max_contacts: 2
  within_days: 7
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _actions(folder: Path, *texts: tuple[str, str], rules: str = GLOBAL):
    folder.mkdir(exist_ok=True)
    for name, text in texts:
        _write(folder, name, text)
    _write(folder, "_global", rules)
    return load_all(folder, segments=frozenset()), load_rules(folder)


# customer_id, email, phone, lifetime_revenue, days_since_last_order, aov, time_zone, is_erased
CUSTOMERS = [
    ("c1", "c1@x.org", None, 900, 80, 150.0, "Europe/Berlin", False),  # push consent: push wins
    ("c2", "c2@x.org", None, 900, 80, 150.0, "America/New_York", False),  # no push consent
    ("c3", "c3@x.org", None, 900, 80, 150.0, "Asia/Tokyo", False),  # push sent 3 nights ago
    ("c4", "c4@x.org", None, 900, 80, 150.0, "UTC", False),  # 2 contacts this week: capped
    ("c5", "c5@x.org", None, 900, 80, 150.0, "UTC", True),  # erased
    ("c6", "c6@x.org", None, 900, 80, 150.0, "UTC", False),  # push suppressed
    ("c7", "c7@x.org", None, 900, 80, 150.0, "Europe/Berlin", False),  # old / same-night sends
    ("c8", "c8@x.org", None, 100, 80, 50.0, "UTC", False),  # spent too little: not eligible
    ("c9", None, None, 900, 80, 150.0, "UTC", False),  # no email: no contact point
    ("c10", "c10@x.org", None, 900, 80, None, "UTC", False),  # no CLV: value fallback
]
P_ALIVE = {"c1": 0.3, "c2": 0.6, "c3": 0.2, "c4": 0.5, "c5": 0.5, "c6": 0.4, "c7": 0.1}
BEST_HOUR = {"c1": 6 * 24 + 1, "c2": 6 * 24 + 19, "c3": 2 * 24 + 9, "c7": 6 * 24 + 19}
POPULATION_HOUR = 3 * 24 + 19  # Thursday 19:00


def _consent(contact: str, channel: str, status: str = "granted", suppressed: bool = False):
    consented = status == "granted" and not suppressed
    return (contact, channel, "marketing", status, suppressed, False, consented, False)


CONSENT = [
    _consent("c1@x.org", "push"), _consent("c1@x.org", "email"),
    _consent("c2@x.org", "email"), _consent("c2@x.org", "push", "revoked"),
    _consent("c3@x.org", "push"), _consent("c3@x.org", "email"),
    _consent("c4@x.org", "push"), _consent("c4@x.org", "email"),
    _consent("c5@x.org", "push"), _consent("c5@x.org", "email"),
    _consent("c6@x.org", "push", suppressed=True), _consent("c6@x.org", "email"),
    _consent("c7@x.org", "push"), _consent("c7@x.org", "email"),
    _consent("c10@x.org", "push"), _consent("c10@x.org", "email"),
]  # fmt: skip


def _history(con, sync: str, segment: str, days_ago: int, customer: str, outcome: str = "ok"):
    day = AS_OF - dt.timedelta(days=days_ago)
    con.execute(
        "insert into activation.contact_history values (md5(? || ? || ?), ?, 'sr', 'run', "
        "'file_drop', ?, 'push', 'marketing', ?, ?, 'x@x.org', ?, false, null, null, "
        "'granted', null, now(), 1, now(), null)",
        [sync, customer, str(day), sync, segment, day, customer, outcome],
    )


@pytest.fixture
def warehouse(tmp_path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    for schema in ("marts", "audit", "intermediate"):
        con.execute(f"create schema {schema}")
    con.execute(
        "create table marts.customer_360 (customer_id varchar, email varchar, phone varchar, "
        "first_name varchar, lifetime_revenue decimal(18, 2), days_since_last_order bigint, "
        "order_count bigint, average_order_value decimal(18, 2), time_zone varchar, "
        "is_erased boolean, as_of date)"
    )
    for cid, email, phone, revenue, days, aov, zone, erased in CUSTOMERS:
        con.execute(
            "insert into marts.customer_360 values (?, ?, ?, 'Ann', ?, ?, 3, ?, ?, ?, ?)",
            [cid, email, phone, revenue, days, aov, zone, erased, AS_OF],
        )
    con.execute(
        "create table marts.customer_clv (customer_id varchar, expected_purchases_90d double, "
        "p_alive double, predicted_value_12m double, as_of date)"
    )
    for cid, *_ in CUSTOMERS:
        con.execute(
            "insert into marts.customer_clv values (?, 0.1, ?, 100, ?)",
            [cid, P_ALIVE.get(cid), AS_OF],
        )
    con.execute(
        "create table marts.customer_send_time (customer_id varchar, best_hour_of_week integer, "
        "n_events bigint, confidence double, confidence_level varchar, as_of date)"
    )
    for cid, hour in BEST_HOUR.items():
        con.execute(
            "insert into marts.customer_send_time values (?, ?, 5, 0.3, 'high', ?)",
            [cid, hour, AS_OF],
        )
    con.execute(
        "create table audit.send_time_evals (as_of date, run_id varchar, evaluated_at timestamp, "
        "population_best_hour integer)"
    )
    con.execute(
        "insert into audit.send_time_evals values (?, 'r', now(), ?)", [AS_OF, POPULATION_HOUR]
    )
    con.execute(
        "create table marts.consent_state (contact_point varchar, channel varchar, "
        "purpose varchar, consent_status varchar, is_suppressed boolean, is_expired boolean, "
        "is_consented boolean, is_erased boolean, consent_captured_at timestamp)"
    )
    for row in CONSENT:
        con.execute(
            "insert into marts.consent_state values (?, ?, ?, ?, ?, ?, ?, ?, timestamp '2026-01-01')",
            list(row),
        )
    ensure_tables(con)
    _history(con, "file_drop__push", "action:win_back_push", 3, "c3")  # cooldown
    _history(con, "file_drop__a", "vip", 2, "c4")  # frequency cap: two contacts
    _history(con, "file_drop__b", "churn_risk", 6, "c4")
    _history(con, "file_drop__a", "vip", 9, "c1")  # outside the cap window
    _history(con, "file_drop__push", "action:win_back_push", 20, "c7")  # cooldown over
    _history(con, "file_drop__push", "action:win_back_push", 0, "c7")  # this night: not read
    _history(con, "file_drop__push", "action:win_back_push", 2, "c1", "rejected")  # not a contact
    yield con
    con.close()


def _rows(con) -> dict[tuple[str, str], dict]:
    cursor = con.execute("select * from marts.next_best_action")
    names = [c[0] for c in cursor.description]
    return {(r[0], r[1]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def _run(con, tmp_path, *actions, **kwargs):
    loaded, rules = _actions(tmp_path / "actions", *actions, **kwargs)
    return nba.run(con, AS_OF, loaded, rules)


def test_flags_rank_and_reasons(warehouse, tmp_path):
    out = _run(warehouse, tmp_path, ("win_back_push", PUSH), ("win_back_email", EMAIL))
    rows = _rows(warehouse)
    # eligibility: lifetime_revenue >= 500 and 60..365 days; c8 spent too little
    assert {c for c, _ in rows} == {f"c{i}" for i in (1, 2, 3, 4, 5, 6, 7, 9, 10)}
    assert out.rows == len(rows) == 18

    def codes(cid, action):
        return rows[(cid, action)]["reason_codes"]

    # c1: push consented, priority 1: next best; email outranked; a rejected send is no contact
    assert rows[("c1", "win_back_push")]["is_next_best"]
    assert rows[("c1", "win_back_push")]["action_rank"] == 1
    assert codes("c1", "win_back_email")[0] == "outranked"
    assert rows[("c1", "win_back_push")]["recent_contacts"] == 0
    # c2: push consent revoked -> the email is the next best
    assert codes("c2", "win_back_push")[:2] == ["blocked", "consent_revoked"]
    assert rows[("c2", "win_back_email")]["is_next_best"]
    assert rows[("c2", "win_back_push")]["action_rank"] == 2
    # c3: push sent 3 nights ago, cooldown 14 days
    assert rows[("c3", "win_back_push")]["is_in_cooldown"]
    assert "cooldown" in codes("c3", "win_back_push")
    assert rows[("c3", "win_back_push")]["last_sent_as_of"] == AS_OF - dt.timedelta(days=3)
    assert rows[("c3", "win_back_email")]["is_next_best"]
    # c4: two contacts in the last 7 nights, cap 2: nothing for c4
    assert rows[("c4", "win_back_push")]["recent_contacts"] == 2
    assert all(rows[("c4", a)]["is_frequency_capped"] for a in ("win_back_push", "win_back_email"))
    assert not any(rows[("c4", a)]["is_next_best"] for a in ("win_back_push", "win_back_email"))
    # c5: erased (and the segments' global exclusion, is_erased = true)
    assert codes("c5", "win_back_push")[:2] == ["blocked", "erased"]
    assert "global_exclusion" in codes("c5", "win_back_push")
    # c6: push suppressed
    assert rows[("c6", "win_back_push")]["is_suppressed"]
    assert "suppressed" in codes("c6", "win_back_push")
    assert rows[("c6", "win_back_email")]["is_next_best"]
    # c7: a send 20 nights ago is out of cooldown; this night's own send is not read
    assert not rows[("c7", "win_back_push")]["is_in_cooldown"]
    assert rows[("c7", "win_back_push")]["last_sent_as_of"] == AS_OF - dt.timedelta(days=20)
    assert rows[("c7", "win_back_push")]["is_next_best"]
    # c9: no email, no contact point for push or email
    assert "no_contact_point" in codes("c9", "win_back_push")
    assert not rows[("c9", "win_back_push")]["has_contact_point"]
    # one next best at most per customer, and it is rank 1
    best = [k for k, r in rows.items() if r["is_next_best"]]
    assert len({c for c, _ in best}) == len(best)
    assert all(rows[k]["action_rank"] == 1 and rows[k]["is_sendable"] for k in best)
    assert out.customers_with_action == len(best) == 6
    assert out.per_action["win_back_push"]["blocked_by"]["cooldown"] == 1


def test_expected_value_follows_the_value_model(warehouse, tmp_path):
    _run(warehouse, tmp_path, ("win_back_push", PUSH), ("win_back_email", EMAIL))
    rows = _rows(warehouse)
    aov = {c[0]: c[5] for c in CUSTOMERS}
    for (cid, action), row in rows.items():
        rate, fallback = (0.08, 5.0) if action == "win_back_push" else (0.05, 0.0)
        p_alive = P_ALIVE.get(cid)
        if p_alive is None or aov[cid] is None:
            assert row["expected_value"] == fallback
            assert "value_fallback" in row["reason_codes"]
        else:
            assert row["expected_value"] == pytest.approx(rate * (1 - p_alive) * aov[cid])
            assert "value_fallback" not in row["reason_codes"]


def test_equal_priority_goes_to_the_higher_expected_value(warehouse, tmp_path):
    richer = EMAIL.replace("priority: 2", "priority: 1").replace("rate: 0.05", "rate: 0.5")
    _run(warehouse, tmp_path, ("win_back_push", PUSH), ("win_back_email", richer))
    rows = _rows(warehouse)
    assert rows[("c1", "win_back_email")]["is_next_best"]
    assert rows[("c1", "win_back_push")]["reason_codes"][0] == "outranked"


def _expected_send_at(hour: int, zone: str) -> tuple[dt.datetime, dt.datetime]:
    start = AS_OF + dt.timedelta(days=1)
    day = start + dt.timedelta(days=(hour // 24 - start.weekday()) % 7)
    local = dt.datetime.combine(day, dt.time(hour % 24))
    utc = local.replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC).replace(tzinfo=None)
    return local, utc


def test_send_at_is_the_next_best_hour_in_the_customers_zone(warehouse, tmp_path):
    _run(warehouse, tmp_path, ("win_back_push", PUSH), ("win_back_email", EMAIL))
    rows = _rows(warehouse)
    zones = {c[0]: c[6] for c in CUSTOMERS}
    for (cid, _), row in rows.items():
        hour = BEST_HOUR.get(cid, POPULATION_HOUR)
        assert row["best_hour_of_week"] == hour
        assert row["send_time_source"] == ("personal" if cid in BEST_HOUR else "population")
        assert (row["send_at_local"], row["send_at_utc"]) == _expected_send_at(hour, zones[cid])
        assert row["send_at_local"].date() > AS_OF
        assert row["send_at_local"].date() <= AS_OF + dt.timedelta(days=7)
    # Sunday 01:00 in Berlin on the night summer time ends is still UTC+2; 19:00 is UTC+1
    c1 = rows[("c1", "win_back_push")]
    assert c1["send_at_local"] == dt.datetime(2026, 10, 25, 1)
    assert c1["send_at_utc"] == dt.datetime(2026, 10, 24, 23)
    c7 = rows[("c7", "win_back_push")]
    assert c7["send_at_utc"] == dt.datetime(2026, 10, 25, 18)
    # Wednesday 09:00 in Tokyo is Wednesday 00:00 UTC
    assert rows[("c3", "win_back_email")]["send_at_utc"] == dt.datetime(2026, 10, 28, 0)


def test_holdout_is_a_stable_hash_and_the_audience_keeps_it(warehouse, tmp_path):
    half = PUSH + "holdout: 0.5\n"
    _run(warehouse, tmp_path, ("win_back_push", half), ("win_back_email", EMAIL))
    rows = _rows(warehouse)
    for (cid, action), row in rows.items():
        digest = hashlib.md5(f"{cid}:action:{action}".encode()).hexdigest()
        threshold = 5000 if action == "win_back_push" else 0
        assert row["is_holdout"] == (int(digest[:8], 16) % 10000 < threshold)
    assert any(r["is_holdout"] for r in rows.values())  # the check above can fail
    audience = warehouse.execute(
        "select customer_id, segment_name, is_holdout from marts.action_membership"
    ).fetchall()
    expected = {
        (cid, f"action:{action}", r["is_holdout"])
        for (cid, action), r in rows.items()
        if r["is_next_best"]
    }
    assert set(audience) == expected
    # held out of the next best action is still the next best (measured, never moved on)
    assert any(h for _, _, h in audience)


def test_rerun_after_the_nights_sends_is_identical(warehouse, tmp_path):
    _run(warehouse, tmp_path, ("win_back_push", PUSH), ("win_back_email", EMAIL))
    first = warehouse.execute("select * from marts.next_best_action order by all").fetchall()
    for cid in ("c1", "c2", "c6"):
        _history(warehouse, "file_drop__push", "action:win_back_push", 0, cid)
    _run(warehouse, tmp_path, ("win_back_push", PUSH), ("win_back_email", EMAIL))
    assert (
        warehouse.execute("select * from marts.next_best_action order by all").fetchall() == first
    )


def test_without_contact_history_or_actions(warehouse, tmp_path):
    warehouse.execute("drop table activation.contact_history")
    _run(warehouse, tmp_path, ("win_back_push", PUSH))
    rows = _rows(warehouse)
    assert rows[("c3", "win_back_push")]["is_next_best"]  # no history, no cooldown
    columns = [c[0] for c in warehouse.execute("select * from marts.next_best_action").description]
    out = nba.run(warehouse, AS_OF, [], load_rules(tmp_path / "actions"))
    assert out.rows == 0
    empty = [c[0] for c in warehouse.execute("select * from marts.next_best_action").description]
    assert empty == columns


def test_eligibility_values_stay_literals(warehouse, tmp_path):
    sneaky = PUSH.replace(
        "    - trait: lifetime_revenue\n      gte: 500\n",
        '    - trait: email\n      ne: "x\'); drop table marts.customer_360; --"\n',
    )
    _run(warehouse, tmp_path, ("win_back_push", sneaky))
    assert warehouse.execute("select count(*) from marts.customer_360").fetchone()[0] == 10
    assert ("c8", "win_back_push") in _rows(warehouse)  # the revenue rule is gone


def test_planner_reads_the_action_audience_and_checks_consent(warehouse, tmp_path):
    _run(warehouse, tmp_path, ("win_back_push", PUSH), ("win_back_email", EMAIL))
    # a stale or wrong audience row for a customer without push consent: the planner filters it
    warehouse.execute(
        "create or replace view marts.action_membership as "
        "select customer_id, 'action:' || action_name as segment_name, is_holdout, as_of "
        "from marts.next_best_action where is_next_best or customer_id = 'c2'"
    )
    sync = load_sync(
        _write(
            tmp_path,
            "push_sync",
            """
            name: push_sync
            description: Win-back pushes.
            action: win_back_push
            destination: file_drop
            channel: push
            purpose: marketing
            fields:
              customer_id: customer_id
              first_name: first_name
            """,
        ),
        segments=frozenset(),
    )
    counts = build_plan(warehouse, sync, AS_OF)
    plan = dict(
        warehouse.execute(f"select customer_id, filter_reason from {PLAN_TABLE}").fetchall()
    )
    assert plan == {"c1": None, "c7": None, "c10": None, "c2": "consent_revoked"}
    assert counts == {"send": 3, "filtered": 1}


SYNC = """
name: s
description: d
action: win_back_push
destination: file_drop
channel: push
purpose: marketing
fields:
  customer_id: customer_id
"""


def test_shipped_actions_are_valid():
    actions = {a.name: a for a in load_all()}
    assert actions["win_back_push"].channel == "push"
    assert load_rules().frequency_cap is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (SYNC.replace("channel: push", "channel: email"), "channel: 'email', but action"),
        (SYNC.replace("purpose: marketing", "purpose: profiling"), "purpose: 'profiling', but"),
        (SYNC.replace("win_back_push", "nope"), "action: 'nope' is not a defined action"),
        (SYNC + "segment: vip\n", "give a segment or an action, not both"),
    ],
)
def test_sync_naming_an_action_is_checked(tmp_path, body, message):
    path = _write(tmp_path, "s", body)
    with pytest.raises(SyncDefinitionError) as err:
        load_sync(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_sync_of_an_action_reads_its_audience(tmp_path):
    sync = load_sync(_write(tmp_path, "s", SYNC))
    assert (sync.segment, sync.audience_table) == (
        "action:win_back_push",
        "marts.action_membership",
    )
    assert sync.contact_column == "email"


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("model: win_back", "model: magic", 12, "value.model: 'magic' is not a value model"),
        ("model: win_back", "model: \"1); drop table x; --\"", 12, "is not a value model"),
        ("rate: 0.08", "rate: 1.5", 13, "value.rate: must be a number from 0 to 1"),
        ("rate: 0.08", "amount: 3", 13, "value.amount: not a parameter of 'win_back'"),
        ("  rate: 0.08\n", "", 12, "value: value model 'win_back' needs 'rate'"),
        ("rate: 0.08", "rate: .nan", 13, "value.rate: nan is not allowed: give a finite number"),
        ("rate: 0.08", "rate: '0.08'", 13, "value.rate: '0.08' is not of type 'number'"),
        ("trait: lifetime_revenue", "trait: lifetime_revenu", 5,
         "eligibility.all[0].trait: 'lifetime_revenu' is not a customer_360 column"),
        ("gte: 500", "gte: 500\n      lte: 900", 5, "give exactly one operator"),
        ("channel: push", "channel: fax", 9, "channel: 'fax' is not one of"),
        ("purpose: marketing", "purpose: spam", 10, "purpose: 'spam' not one of"),
        ("Lapsing high-value customers, by push.", "'{{ env_var(\"X\") }}'", 2,
         "description: '{{' is not allowed"),
        ("name: win_back_push", "name: other", 1,
         "name: name 'other' must equal the file name 'win_back_push'"),
        ("priority: 1", "priority: 0", 16, "priority: 0 is less than the minimum of 1"),
        ("cooldown_days: 14", "cooldown_days: -1", 15, "cooldown_days: -1 is less than"),
        ("priority: 1", "priority: 1\nsql: select 1", 1, "'sql' was unexpected"),
        ("priority: 1", "priority: 1\npriority: 2", 17, "key 'priority' is given twice"),
        ("cooldown_days: 14\n", "", 1, "'cooldown_days' is a required property"),
    ],
)  # fmt: skip
def test_action_errors_name_file_line_and_field(tmp_path, old, new, line, message):
    assert old in PUSH
    path = _write(tmp_path, "win_back_push", PUSH.replace(old, new, 1))
    with pytest.raises(ActionError) as err:
        load_action(path, segments=frozenset())
    assert f"{path}:{line}: " in str(err.value)
    assert message in str(err.value)


def test_eligibility_may_refer_only_to_defined_segments(tmp_path):
    body = PUSH.replace("  all:\n", "  all:\n    - segment: lapsed_high_value\n")
    path = _write(tmp_path, "win_back_push", body)
    assert load_action(path).eligibility["all"][0] == {"segment": "lapsed_high_value"}
    with pytest.raises(ActionError, match="segment 'lapsed_high_value' is not a defined segment"):
        load_action(path, segments=frozenset({"vip"}))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("frequency_cap:\n  max_contacts: 0\n  within_days: 7\n",
         "_global.yml:2: frequency_cap.max_contacts: an integer from 1 to 1000"),
        ("frequency_cap:\n  max_contacts: 2\n  within: 7\n", "frequency_cap.within: unknown field"),
        ("cap: 3\n", "_global.yml:1: cap: unknown field"),
    ],
)  # fmt: skip
def test_global_rules_are_checked(tmp_path, body, message):
    _write(tmp_path, "_global", body)
    with pytest.raises(ActionError, match=message):
        load_rules(tmp_path)
