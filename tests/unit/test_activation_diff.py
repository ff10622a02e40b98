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


D4 = dt.date(2026, 11, 23)


def test_delete_mode_also_removes_withdrawn_and_merged_ids(con):
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(5)])
    _, actions = _plan(con, D1, mode="upsert")
    _ack_all(con, D1, actions)
    # the delete sync's audience is c0; c4 revoked consent; c3 was merged into c1
    _desired(con, [("c0", "0@x.org", "gold")])
    con.execute("create or replace table withdrawn as select 'c4' as identifier")
    con.execute("insert into marts.customer_id_history values ('c3', 'c1')")
    _, actions = _plan(con, D2, mode="delete", withdrawn_relation="withdrawn")
    assert actions == {"c0": "remove", "c3": "remove", "c4": "remove"}


@pytest.mark.parametrize("status", ["retryable", "unknown"])
def test_a_removal_that_failed_is_retried_until_it_succeeds(con, status):
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(5)])
    _, actions = _plan(con, D1, mode="mirror", max_remove_share=1.0)
    _ack_all(con, D1, actions)
    # c4 revoked consent (forced in every mode), c3 left the mirror audience
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(3)])
    con.execute("create or replace table withdrawn as select 'c4' as identifier")
    _, actions = _plan(con, D2, mode="mirror", withdrawn_relation="withdrawn", max_remove_share=1.0)
    assert actions == {"c3": "remove", "c4": "remove"}
    _ack_all(con, D2, actions, status=status)
    _, actions = _plan(con, D3, mode="mirror", withdrawn_relation="withdrawn", max_remove_share=1.0)
    assert actions == {"c3": "remove", "c4": "remove"}, "both removals are retried"
    _, actions = _plan(con, D3, mode="upsert", withdrawn_relation="withdrawn")
    assert actions == {"c4": "remove"}, "upsert retries the forced removal only"
    _ack_all(con, D3, actions)
    _, actions = _plan(con, D4, mode="upsert", withdrawn_relation="withdrawn")
    assert actions == {}, "a removal that succeeded is not sent again"


def test_a_rejected_leaver_removal_is_not_resent_every_night(con):
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(5)])
    _, actions = _plan(con, D1, mode="mirror", max_remove_share=1.0)
    _ack_all(con, D1, actions)
    _desired(con, [(f"c{i}", f"{i}@x.org", "gold") for i in range(4)])
    _, actions = _plan(con, D2, mode="mirror", max_remove_share=1.0)
    _ack_all(con, D2, actions, status="rejected")
    _, actions = _plan(con, D3, mode="mirror", max_remove_share=1.0)
    assert actions == {}


def test_each_acknowledged_application_starts_a_new_key_generation(con):
    """A re-add after a removal with the same fields must not reuse the earlier create's
    idempotency key (the destination would swallow it as a duplicate); a retry must reuse it."""
    from orchestration.activation.destinations.rows import make_row
    from orchestration.activation.diff import pending_sql

    def keys(plan_id):
        rows = con.execute(
            f"select identifier, action, state_generation from ({pending_sql('s', plan_id)})"
        ).fetchall()
        return {
            i: make_row("s", i, "delete" if a == "remove" else "upsert", {}, g).idempotency_key
            for i, a, g in rows
        }

    audience = [("c1", "1@x.org", "gold"), ("c2", "2@x.org", "gold")]
    _desired(con, audience)
    _, actions = _plan(con, D1, mode="mirror", max_remove_share=1.0)
    first = keys(D1.isoformat())
    _ack_all(con, D1, actions, failing={"c2"})
    _, actions = _plan(con, D2, mode="mirror", max_remove_share=1.0)
    assert keys(D2.isoformat())["c2"] != first["c1"]
    retried = keys(D2.isoformat())["c2"]
    assert retried == first["c2"], "a retry keeps its key (the destination applies it once)"
    _ack_all(con, D2, actions)
    _desired(con, audience[:1])
    _, actions = _plan(con, D3, mode="mirror", max_remove_share=1.0)
    assert actions == {"c2": "remove"}
    _ack_all(con, D3, actions)
    _desired(con, audience)
    _, actions = _plan(con, D4, mode="mirror", max_remove_share=1.0)
    assert actions == {"c2": "create"}
    assert keys(D4.isoformat())["c2"] != first["c2"], "the re-add is a new application"
    generations = dict(
        con.execute("select identifier, generation from activation.sync_state").fetchall()
    )
    assert generations == {"c1": 1, "c2": 2}


def test_a_state_row_that_appears_between_plan_and_ack_is_upserted_from_the_state_now(con):
    """A chunk is read (with its state rows) before it is sent; a state row written for one of
    its identifiers before it is acknowledged (another writer, an earlier plan acknowledged in
    between) makes the cheap insert fail on the primary key (the runner then redoes the
    transaction with upsert=True, see test_webhook_sync), and the upsert derives that row from
    the state row as it is then."""
    import duckdb

    from orchestration.activation.diff import acknowledge_chunk, pending_sql

    _desired(con, [("c1", "a@x.org", "gold"), ("c2", "b@x.org", "gold")])
    _plan(con, D1)
    # the chunk as the runner reads it before sending: neither identifier has a state row
    con.execute(
        f"create temp table chunk as select *, 'ok' as status, null as error "
        f"from ({pending_sql('s', D1.isoformat())})"
    )
    assert con.execute("select count(*) from chunk where state_attempts is null").fetchone() == (2,)
    # meanwhile a state row for c1 appears: sent twice before, acknowledged once, not created here
    con.execute(
        "insert into activation.sync_state (sync_id, identifier, row_hash, status, attempts, "
        "last_error, created_by_sync, updated_as_of, customer_id, generation, last_action) values "
        "('s', 'c1', 'old-hash', 'retryable', 2, 'HTTP 503', false, ?, 'c1', 1, 'update')",
        [D1],
    )
    with pytest.raises(duckdb.ConstraintException):
        acknowledge_chunk(con, "s", D1.isoformat(), "chunk", 1, 2, distinct_identifiers=True)
    acknowledge_chunk(con, "s", D1.isoformat(), "chunk", 1, 2, True, upsert=True)
    state = {
        row[0]: row[1:]
        for row in con.execute(
            "select identifier, status, attempts, created_by_sync, generation, last_error, "
            "row_hash = (select row_hash from chunk where identifier = s.identifier) "
            "from activation.sync_state as s order by 1"
        ).fetchall()
    }
    assert state == {
        "c1": ("ok", 3, False, 2, None, True),  # counted on from the row that appeared
        "c2": ("ok", 1, True, 1, None, True),  # a first-time row, inserted
    }
    # acknowledged rows leave the plan: nothing of it is pending any more
    assert con.execute("select count(*) from activation.sync_plan").fetchone() == (0,)


def test_a_plan_left_pending_in_the_older_table_shape_is_refreshed_and_resumable(con):
    """A plan table of the shape before plan rows carried seq, state and consent (a crash left
    it pending under older code): ensure_state adds the columns, and refresh_pending renumbers
    the pending rows 1..n with their state row now and the consent read now, so they are read
    and keyed like a plan written today; rows already acknowledged are left alone."""
    from orchestration.activation.destinations.rows import make_row
    from orchestration.activation.diff import ensure_state, pending_sql, refresh_pending

    con.execute("create schema activation")
    con.execute(
        "create table activation.sync_plan (sync_id varchar not null, plan_id varchar not null, "
        "as_of date not null, identifier varchar not null, customer_id varchar, "
        "action varchar not null, row_hash varchar, fields_json varchar, outcome varchar, "
        "error varchar)"
    )
    con.execute(
        "insert into activation.sync_plan values "
        "('s', 'old', ?, 'c1', 'c1', 'create', 'h1', '{\"email\":\"1@x.org\"}', 'ok', null), "
        "('s', 'old', ?, 'c3', 'c3', 'update', 'h3', '{\"email\":\"3@x.org\"}', null, null), "
        "('s', 'old', ?, 'c2', 'c2', 'create', 'h2', '{\"email\":\"2@x.org\"}', null, null)",
        [D1, D1, D1],
    )
    ensure_state(con)
    # c3 has a state row (sent before, acknowledged twice): its key is of generation 2
    con.execute(
        "insert into activation.sync_state (sync_id, identifier, row_hash, status, attempts, "
        "last_error, created_by_sync, updated_as_of, customer_id, generation, last_action) values "
        "('s', 'c3', 'h0', 'ok', 2, null, true, ?, 'c3', 2, 'update')",
        [D1],
    )
    con.execute(
        "create table contacts as select * from (values "
        "('c2', '2@x.org', 'granted', timestamp '2026-11-01 08:00:00'), "
        "('c3', '3@x.org', 'granted', timestamp '2026-11-02 09:00:00')) "
        "as t(customer_id, contact_point, consent_status, consent_captured_at)"
    )
    refresh_pending(con, "s", "old", "contacts")
    rows = con.execute(
        f"select seq, identifier, state_attempts, state_generation, contact_point, op, "
        f"idempotency_key from ({pending_sql('s', 'old')}) order by seq"
    ).fetchall()
    fields = {"c2": {"email": "2@x.org"}, "c3": {"email": "3@x.org"}}
    assert rows == [
        (1, "c2", None, 0, "2@x.org", "upsert", make_row("s", "c2", "upsert", fields["c2"]).idempotency_key),
        (2, "c3", 2, 2, "3@x.org", "upsert", make_row("s", "c3", "upsert", fields["c3"], 2).idempotency_key),
    ]  # fmt: skip
    assert con.execute(
        "select outcome, seq from activation.sync_plan where identifier = 'c1'"
    ).fetchone() == ("ok", None), "an acknowledged row is not pending again"
