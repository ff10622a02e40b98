"""The diff planner against the acknowledged state: unchanged rows are not sent, failed rows are
retried, mirror removes only what it created and refuses a collapsed audience, merged-away ids
are removed in every mode."""

import datetime as dt

import duckdb
import pytest

from orchestration.activation.diff import MirrorGuardError, acknowledge, plan_diff

D1, D2, D3 = dt.date(2026, 11, 20), dt.date(2026, 11, 21), dt.date(2026, 11, 22)


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        "create table marts.customer_id_history (retired_customer_id varchar, current_customer_id varchar)"
    )
    return con


def _desired(con, rows):
    con.execute(
        "create or replace table desired (customer_id varchar, email varchar, tier varchar)"
    )
    if rows:
        con.executemany("insert into desired values (?, ?, ?)", rows)


def _plan(con, as_of, mode="upsert", **kw):
    plan_id = as_of.isoformat()
    counts = plan_diff(
        con, "s", plan_id, as_of, "desired", "customer_id", ["email", "tier"], mode, **kw
    )
    actions = dict(
        con.execute(
            "select identifier, action from activation.sync_plan where sync_id = 's' and plan_id = ?",
            [plan_id],
        ).fetchall()
    )
    return counts, actions


def _ack_all(con, as_of, actions, status="ok", failing=()):
    acknowledge(
        con, "s", as_of.isoformat(),
        {i: (("retryable", "HTTP 503") if i in failing else (status, "")) for i in actions},
    )  # fmt: skip


def test_only_changes_and_failures_are_sent(con):
    _desired(con, [("c1", "a@x.org", "gold"), ("c2", "b@x.org", None), ("c3", "c@x.org", "silver")])
    counts, actions = _plan(con, D1)
    assert (counts.create, counts.update, counts.unchanged, counts.remove) == (3, 0, 0, 0)
    _ack_all(con, D1, actions, failing={"c3"})
    # unchanged audience: nothing sent but the failed row, retried though unchanged
    counts, actions = _plan(con, D2)
    assert actions == {"c3": "update"} and counts.unchanged == 2
    _ack_all(con, D2, actions)
    # a changed field (null -> value counts as a change) is an update; nothing else moves
    _desired(
        con, [("c1", "a@x.org", "gold"), ("c2", "b@x.org", "bronze"), ("c3", "c@x.org", "silver")]
    )
    counts, actions = _plan(con, D3)
    assert actions == {"c2": "update"} and counts.unchanged == 2


def test_removals_by_mode_and_merged_ids(con):
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(10)])
    _, actions = _plan(con, D1, mode="mirror")
    _ack_all(con, D1, actions)
    # c9 leaves the audience; c8 was merged into c0 (its id retired)
    con.execute("insert into marts.customer_id_history values ('c8', 'c0')")
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(8)])
    _, actions = _plan(con, D2, mode="upsert")
    assert actions == {"c8": "remove"}, "upsert removes only merged-away ids"
    _, actions = _plan(con, D2, mode="mirror")
    assert actions == {"c8": "remove", "c9": "remove"}
    _ack_all(con, D2, actions)
    state = dict(con.execute("select identifier, status from activation.sync_state").fetchall())
    assert state["c9"] == "removed" and state["c0"] == "ok"
    # a removed row that comes back is created again
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(8)] + [("c9", "9@x.org", "gold")])
    _, actions = _plan(con, D3, mode="mirror")
    assert actions == {"c9": "create"}


def test_mirror_never_acts_on_a_collapsed_audience(con):
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(10)])
    _, actions = _plan(con, D1, mode="mirror")
    _ack_all(con, D1, actions)
    _desired(con, [])  # an empty segment (e.g. an upstream bug)
    with pytest.raises(MirrorGuardError, match="would remove 10 of 10 rows"):
        _plan(con, D2, mode="mirror", max_remove_share=0.2)
    planned = con.execute(
        "select count(*) from activation.sync_plan where as_of = ?", [D2]
    ).fetchone()
    assert planned == (0,), "nothing planned, nothing removed"


@pytest.mark.parametrize("mode", ["upsert", "update_only", "create_only", "mirror"])
def test_withdrawn_people_are_removed_in_every_mode(con, mode):
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(5)])
    _, actions = _plan(con, D1, mode="upsert")
    _ack_all(con, D1, actions)
    # c4 revoked consent: no longer desired, and named as withdrawn
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(4)])
    con.execute("create or replace table withdrawn as select 'c4' as identifier")
    _, actions = _plan(con, D2, mode=mode, withdrawn_relation="withdrawn")
    assert actions == {"c4": "remove"}


def test_a_plan_stays_pending_until_each_row_is_acknowledged(con):
    from orchestration.activation.diff import pending_plan

    _desired(con, [("c1", "a@x.org", "gold"), ("c2", "b@x.org", "gold")])
    _plan(con, D1)
    assert pending_plan(con, "s") == (D1.isoformat(), D1)
    acknowledge(con, "s", D1.isoformat(), {"c1": ("ok", "")})  # a crash after one chunk
    assert pending_plan(con, "s") == (D1.isoformat(), D1)
    state = dict(con.execute("select identifier, status from activation.sync_state").fetchall())
    assert state == {"c1": "ok"}
    acknowledge(con, "s", D1.isoformat(), {"c2": ("retryable", "HTTP 503")})
    assert pending_plan(con, "s") is None
