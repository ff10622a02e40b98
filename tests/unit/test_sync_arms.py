"""A/B/n arms of a sync (orchestration/activation/arms.py): the YAML's validation, the stable
hash assignment (SQL and Python agree; a member keeps their arm; appending an arm moves only
members of the remainder), and a file sync end to end — the arm in the file and in
contact_history, the remainder held out."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import pytest

from orchestration.activation.arms import ArmSpec, assign, expected_shares, parse_arms
from orchestration.activation.planner import PLAN_TABLE, build_plan
from orchestration.activation.records import ensure_tables
from orchestration.activation.runner import run_sync
from orchestration.activation.sync_definition import SyncDefinitionError
from orchestration.activation.syncs import load_sync

AS_OF = dt.date(2026, 11, 20)
SEGMENT = "lapsed_high_value"
SEGMENT_HOLDOUT = 0.10
MEMBERS = 4_000

SYNC = f"""
name: file_drop__subjects
description: Two email subjects against the holdout.
segment: {SEGMENT}
destination: file_drop
channel: email
purpose: marketing
format: csv
arms:
  - {{name: subject_a, share: 0.45}}
  - {{name: subject_b, share: 0.35}}
fields:
  customer_id: customer_id
  email: email
  variant: arm
"""


def _write(tmp_path: Path, text: str, name: str = "file_drop__subjects") -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    return path


def _bucket(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % 10000


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ("  - {name: a, share: 0.6}\n  - {name: b, share: 0.5}\n", "arms: the shares sum to 1.1"),
        ("  - {name: a, share: 0.3}\n  - {name: a, share: 0.3}\n", "arms[1].name: 'a' is used"),
        ("  - {name: holdout, share: 0.3}\n", "arms[0].name: 'holdout' is reserved"),
        ("  - {name: Subject A, share: 0.3}\n", "arms[0].name: 'Subject A' is not a name"),
        ("  - {name: a, share: 0}\n", "arms[0].share: a number above 0 and at most 1"),
        ("  - {name: a, share: true}\n", "arms[0].share: a number above 0"),
        ("  - {name: a}\n", "arms[0]: a mapping with exactly name and share"),
    ],
)
def test_invalid_arms_name_the_file_and_the_field(tmp_path, arms, message):
    text = SYNC.split("arms:\n")[0] + "arms:\n" + arms + "fields:\n  email: email\n"
    path = _write(tmp_path, text)
    with pytest.raises(SyncDefinitionError) as err:
        load_sync(path, segments=[SEGMENT])
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_arm_field_and_experiment_need_arms(tmp_path):
    base = SYNC.split("arms:\n")[0] + "fields:\n  email: email\n"
    with pytest.raises(SyncDefinitionError, match="fields: not customer_360 columns: arm"):
        load_sync(_write(tmp_path, base + "  variant: arm\n"), segments=[SEGMENT])
    with pytest.raises(SyncDefinitionError, match="experiment: only a sync with arms"):
        load_sync(_write(tmp_path, base + "experiment: spring\n"), segments=[SEGMENT])
    with pytest.raises(SyncDefinitionError, match="arms: a non-empty list"):
        load_sync(_write(tmp_path, base + "arms: []\n"), segments=[SEGMENT])


def test_a_valid_sync_loads_its_arms(tmp_path):
    sync = load_sync(_write(tmp_path, SYNC + "experiment: spring_subjects\n"), segments=[SEGMENT])
    assert sync.arms == (ArmSpec("subject_a", 0.45), ArmSpec("subject_b", 0.35))
    assert sync.arm_key == "spring_subjects"
    plain = load_sync(_write(tmp_path, SYNC), segments=[SEGMENT])
    assert plain.arm_key == "file_drop__subjects" and plain.experiment is None


def test_assignment_is_stable_sql_equals_python_and_appending_an_arm_moves_only_the_rest():
    arms = (ArmSpec("a", 0.45), ArmSpec("b", 0.35))
    ids = [f"C{i:05d}" for i in range(MEMBERS)]
    con = duckdb.connect()
    con.execute("create table m as select unnest(?) as customer_id", [ids])
    from orchestration.activation.arms import arm_sql

    sql = f"select customer_id, {arm_sql(arms, 'x', 'customer_id')} from m"
    sql_arms = dict(con.execute(sql).fetchall())
    py_arms = {c: assign(c, arms, "x") for c in ids}
    assert sql_arms == py_arms
    # the bucket is md5(customer_id || ':arm:' || experiment), consecutive ranges in order
    assert all(
        py_arms[c] == ("a" if _bucket(f"{c}:arm:x") < 4500 else "b" if _bucket(f"{c}:arm:x") < 8000 else None)
        for c in ids
    )  # fmt: skip
    shares = {k: sum(v == k for v in py_arms.values()) / MEMBERS for k in ("a", "b", None)}
    assert shares == pytest.approx({"a": 0.45, "b": 0.35, None: 0.20}, abs=0.03)
    # a third arm appended from the remainder: nobody in a or b moves
    grown = {c: assign(c, (*arms, ArmSpec("c", 0.1)), "x") for c in ids}
    assert all(grown[c] == py_arms[c] for c in ids if py_arms[c] is not None)
    assert {grown[c] for c in ids if py_arms[c] is None} == {"c", None}
    # another experiment name reshuffles
    other = {c: assign(c, arms, "y") for c in ids}
    assert sum(other[c] != py_arms[c] for c in ids) > MEMBERS / 3
    assert expected_shares(arms, 0.1) == pytest.approx({"a": 0.405, "b": 0.315, None: 0.28})


@pytest.fixture
def warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    ids = [f"C{i:05d}" for i in range(MEMBERS)]
    con.execute(
        "create table marts.customer_360 as select customer_id, lower(customer_id) || '@x.org' "
        "as email, cast(null as varchar) as phone, false as is_erased from "
        "(select unnest(?) as customer_id)",
        [ids],
    )
    con.execute(
        "create table marts.segment_membership as select customer_id, ? as segment_name, "
        "(cast(('0x' || substr(md5(customer_id || ':' || ?), 1, 8)) as ubigint) % 10000) "
        "< ? as is_holdout, date '2026-11-20' as as_of from marts.customer_360",
        [SEGMENT, SEGMENT, round(SEGMENT_HOLDOUT * 10000)],
    )
    con.execute(
        "create table marts.consent_state as select email as contact_point, 'email' as channel, "
        "'marketing' as purpose, 'granted' as consent_status, false as is_suppressed, "
        "false as is_expired, true as is_consented, false as is_erased, "
        "timestamp '2026-01-01' as consent_captured_at from marts.customer_360"
    )
    ensure_tables(con)
    yield con
    con.close()


def test_a_sync_with_arms_sends_each_member_in_their_arm(tmp_path, warehouse, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    sync = load_sync(_write(tmp_path, SYNC), segments=[SEGMENT])
    counts = build_plan(warehouse, sync, AS_OF)
    plan = warehouse.execute(
        f"select p.customer_id, p.is_holdout, p.arm, m.is_holdout from {PLAN_TABLE} as p "
        "join marts.segment_membership as m using (customer_id)"
    ).fetchall()
    for customer, held, arm, segment_held in plan:
        want = None if segment_held else assign(customer, sync.arms, sync.name)
        assert arm == want and held == (want is None), customer
    assert counts["held_out"] == sum(1 for r in plan if r[1])
    out = run_sync(warehouse, sync, AS_OF, "run-1", tmp_path / "out")
    assert out.ok == counts["send"] and out.held_out == counts["held_out"]
    with open(out.output_uri.removeprefix("file://"), newline="") as fh:
        sent = {r["customer_id"]: r["variant"] for r in csv.DictReader(fh)}
    assert sent == {c: a for c, held, a, _ in plan if not held}
    history = warehouse.execute(
        "select outcome, arm, count(*) from activation.contact_history group by all order by all"
    ).fetchall()
    by_arm = {(o, a): n for o, a, n in history}
    assert set(by_arm) == {("ok", "subject_a"), ("ok", "subject_b"), ("held_out", None)}
    # shares of the audience: arm i (1 - h) share_i, held out h + (1 - h)(1 - S)
    expected = expected_shares(sync.arms, SEGMENT_HOLDOUT)
    assert by_arm[("ok", "subject_a")] / MEMBERS == pytest.approx(expected["subject_a"], abs=0.03)
    assert by_arm[("held_out", None)] / MEMBERS == pytest.approx(expected[None], abs=0.03)
    # a rerun of the night records nobody twice and nobody changes arm
    run_sync(warehouse, sync, AS_OF, "run-2", tmp_path / "out")
    assert warehouse.execute("select count(*) from activation.contact_history").fetchone() == (
        MEMBERS,
    )


def test_parse_without_arms_is_empty():
    assert parse_arms({"name": "x"}, Path("x.yml")) == ((), None)


class _Recorder:
    """A destination that accepts every row and keeps what it was sent."""

    def __init__(self):
        self.sent: dict[str, dict] = {}

    def send(self, rows):
        from orchestration.activation.destinations.rows import Outcome

        rows = list(rows)
        for r in rows:
            self.sent[r.identifier] = r.fields
        return {r.idempotency_key: Outcome("ok", "", 1) for r in rows}

    def delete(self, identifiers):
        from orchestration.activation.destinations.rows import Outcome

        return {i: Outcome("ok", "", 1) for i in identifiers}


def test_a_diff_sync_sends_and_records_the_arm(tmp_path, warehouse):
    from orchestration.activation.diff_runner import run_diff_sync

    text = SYNC.replace("destination: file_drop", "destination: webhook").replace(
        "format: csv\n", ""
    )
    sync = load_sync(_write(tmp_path, text), segments=[SEGMENT])
    warehouse.execute(
        "create table marts.customer_id_history (retired_customer_id varchar, "
        "current_customer_id varchar)"
    )
    client = _Recorder()
    out = run_diff_sync(warehouse, sync, AS_OF, "run-1", client)
    want = {
        c: assign(c, sync.arms, sync.name)
        for (c, held) in warehouse.execute(
            "select customer_id, is_holdout from marts.segment_membership"
        ).fetchall()
        if not held
    }
    sent = {c: f["variant"] for c, f in client.sent.items()}
    assert sent == {c: a for c, a in want.items() if a is not None}
    assert out.ok == len(sent) and out.held_out == MEMBERS - len(sent)
    history = dict(
        warehouse.execute(
            "select customer_id, arm from activation.contact_history where outcome = 'ok'"
        ).fetchall()
    )
    assert history == sent
    assert warehouse.execute(
        "select count(*), count(arm) from activation.contact_history where outcome = 'held_out'"
    ).fetchall() == [(MEMBERS - len(sent), 0)]
