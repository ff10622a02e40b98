"""`c360 segments preview|explain` on one real pipeline run (400 customers): counts and overlaps
equal SQL over marts.segment_membership, emails masked unless --show-pii, explain's verdict equals
membership for members and non-members of every segment, and a busy warehouse exits 3."""

import dataclasses
import re
import subprocess
import sys
import textwrap

import duckdb
import pytest

from orchestration.cli import main
from orchestration.contracts.masking import mask_value
from orchestration.segments.model import load_all, load_global
from orchestration.segments.preview import (
    describe_condition,
    explain_membership,
    find_segment,
    leaf_conditions,
    read_only_warehouse,
)
from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="segments_cli")]

DAY = AS_OF.isoformat()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    """400 generated persons, one nightly run at AS_OF; env vars point at this home."""
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    with pytest.MonkeyPatch.context() as mp:
        home = make_home(tmp_path_factory.mktemp("segments_cli_home"), mp)
        generate(400, 7, AS_OF, home.landing, home.truth, progress=None)
        report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
        assert report.success, report.checks_failed
        yield home


def _query(home, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _members(home, segment: str) -> set[str]:
    return {
        r[0]
        for r in _query(
            home,
            "select customer_id from marts.segment_membership where segment_name = ?",
            [segment],
        )
    }


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["segments", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_preview_counts_and_overlaps_equal_sql(home, capsys):
    names = [s.name for s in load_all()]
    checked = 0
    for name in names:
        code, out, err = _run(capsys, "preview", name, "--as-of", DAY)
        assert code == 0, err
        members, holdout = _query(
            home,
            "select count(*), count(*) filter (where is_holdout) from marts.segment_membership "
            "where segment_name = ?",
            [name],
        )[0]
        assert int(re.search(r"^  members\s+([\d,]+)", out, re.M)[1].replace(",", "")) == members
        assert int(re.search(r"^  holdout\s+([\d,]+)", out, re.M)[1].replace(",", "")) == holdout
        # the funnel ends at the segment's membership; its step before is the segment model
        (model_rows,) = _query(home, f"select count(*) from marts.segment__{name}")[0]
        funnel = re.findall(r"^  minus .*?\s([\d,]+)(?:   \(-[\d,]+\))?$", out, re.M)
        assert [int(n.replace(",", "")) for n in funnel][-2:] == [model_rows, members]
        expected = dict(
            _query(
                home,
                "select other.segment_name, count(distinct this.customer_id) "
                "from marts.segment_membership as this "
                "inner join marts.segment_membership as other "
                "on this.customer_id = other.customer_id "
                "and this.segment_name <> other.segment_name "
                "where this.segment_name = ? group by 1",
                [name],
            )
        )
        section = out.split("Overlap with other segments (shared members):\n", 1)[1]
        shown = {
            m[1]: int(m[2].replace(",", ""))
            for m in re.finditer(r"^  (\w+)\s+([\d,]+)\s", section, re.M)
        }
        assert set(shown) == set(names) - {name}  # every other segment, zeros included
        assert shown == {o: expected.get(o, 0) for o in shown}
        checked += members > 0 and any(shown.values())
    assert checked >= 2  # the data gives real overlaps, not only zeros


def test_preview_masks_emails_unless_show_pii(home, capsys):
    code, out, _ = _run(capsys, "preview", "churn_risk")
    assert code == 0
    emails = [r[0] for r in _query(home, "select email from marts.customer_360") if r[0]]
    assert not [e for e in emails if e in out]
    sample_ids = re.findall(r"^  (c_\w+)\s", out, re.M)
    assert len(sample_ids) == min(10, len(_members(home, "churn_risk")))
    sample_emails = [
        r[0]
        for r in _query(
            home,
            "select email from marts.customer_360 where customer_id in (select unnest(?))",
            [sample_ids],
        )
        if r[0]
    ]
    assert sample_emails and all(mask_value(e) in out for e in sample_emails)
    code, out, _ = _run(capsys, "preview", "churn_risk", "--show-pii")
    assert code == 0 and all(e in out for e in sample_emails)


def test_explain_lists_every_leaf_and_agrees_with_membership(home, capsys):
    segment = find_segment(load_all(), "churn_risk")
    members = sorted(_members(home, "churn_risk"))
    buyers = [
        r[0]
        for r in _query(
            home,
            "select customer_id from marts.customer_360 where order_count >= 2 order by 1",
        )
    ]
    outsider = next(c for c in buyers if c not in members)  # bought, but not churning
    leaves = leaf_conditions(segment.condition)
    assert any("orders" in leaf for leaf in leaves)
    for customer_id, verdict in ((members[0], "IN"), (outsider, "NOT in")):
        code, out, err = _run(capsys, "explain", "churn_risk", customer_id, "--as-of", DAY)
        assert code == 0, err
        for leaf in leaves:
            assert re.search(
                r"\[(PASS|FAIL|NULL)\] " + re.escape(describe_condition(leaf)) + r"   \(orders=",
                out,
            ), (leaf, out)
        assert f"Verdict: {verdict} churn_risk\n" in out
        assert "-> agrees" in out
        assert "Global exclusion (dbt_project/segments/_global.yml)" in out
        assert "Priority group retention (churn_risk > one_time_buyers)" in out
        # the first leaf's values equal a direct count over the intermediate orders
        expected = _query(
            home,
            "select count(*), coalesce(sum(total_amount), 0) from intermediate.int_segments__orders "
            "where customer_id = ? and local_date between ?::date - 365 and ?::date",
            [customer_id, DAY, DAY],
        )[0]
        first = re.search(r"0-365 days ago   \(orders=(\d+), revenue=([\d.]+)\)", out)
        assert (int(first[1]), f"{float(first[2]):.2f}") == (
            expected[0],
            f"{float(expected[1]):.2f}",
        )


def test_explain_verdict_equals_membership_for_every_segment(home):
    """Members and non-members (buyers and others) of every segment, event and order ones
    included: the verdict, holdout flag and leaf count agree with the warehouse."""
    segments, rules = load_all(), load_global()
    sample = [
        r[0]
        for r in _query(
            home, "select customer_id from marts.customer_360 using sample 40 rows (reservoir, 3)"
        )
    ]
    with read_only_warehouse() as con:
        for segment in segments:
            members = dict(
                con.execute(
                    "select customer_id, is_holdout from marts.segment_membership "
                    "where segment_name = ? order by customer_id",
                    [segment.name],
                ).fetchall()
            )
            holdouts = [c for c, h in members.items() if h][:2]
            candidates = [*list(members)[:3], *holdouts, *sample[:12]]
            outcomes = set()
            for customer_id in candidates:
                e = explain_membership(con, segments, rules, segment.name, customer_id)
                assert e.verdict == (customer_id in members), (segment.name, customer_id)
                assert e.agrees and e.in_membership == (customer_id in members)
                if e.in_membership:
                    assert e.is_holdout == members[customer_id] == e.membership_is_holdout
                leaves = [r for r in e.conditions if r.is_leaf]
                assert [r.description for r in leaves] == [
                    describe_condition(c) for c in leaf_conditions(segment.condition)
                ]
                outcomes.add(e.verdict)
            if members:
                assert outcomes == {True, False}, segment.name


def test_explain_masks_pii_trait_values(home, capsys):
    """A condition on a PII column shows the value masked (a stand-in vip on `email`)."""
    segments, rules = load_all(), load_global()
    probe = {"all": [{"trait": "email", "is_not_null": True}]}
    changed = [dataclasses.replace(s, condition=probe) if s.name == "vip" else s for s in segments]
    customer_id, email = _query(
        home, "select customer_id, email from marts.customer_360 where email is not null limit 1"
    )[0]
    from orchestration.segments.preview import format_explanation

    with read_only_warehouse() as con:
        e = explain_membership(con, changed, rules, "vip", customer_id)
    masked, shown = format_explanation(e), format_explanation(e, show_pii=True)
    assert f"(email={mask_value(email)})" in masked and email not in masked
    assert f"(email={email})" in shown


def test_unknown_segment_customer_or_other_as_of_exit_1(home, capsys):
    code, out, err = _run(capsys, "preview", "no_such_segment")
    assert code == 1 and not out
    assert "unknown segment 'no_such_segment'" in err and "churn_risk, " in err
    code, _, err = _run(capsys, "explain", "churn_risk", "c_does_not_exist")
    assert code == 1 and "unknown customer_id 'c_does_not_exist'" in err
    code, _, err = _run(capsys, "preview", "vip", "--as-of", "2026-11-20")
    assert code == 1 and f"the warehouse holds as_of {DAY}" in err
    code, _, err = _run(capsys, "explain", "vip", "c_x", "--as-of", "2026-11-20")
    assert code == 1 and f"the warehouse holds as_of {DAY}" in err


def test_commands_leave_the_warehouse_untouched(home, capsys):
    before = home.warehouse.stat().st_mtime_ns, home.warehouse.stat().st_size
    member = sorted(_members(home, "vip"))[0]
    assert _run(capsys, "preview", "vip")[0] == 0
    assert _run(capsys, "explain", "vip", member)[0] == 0
    assert (home.warehouse.stat().st_mtime_ns, home.warehouse.stat().st_size) == before


def test_busy_warehouse_exits_3(home, capsys):
    """A pipeline run (here: a child process with a write connection) holds the lock."""
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, duckdb
                con = duckdb.connect({str(home.warehouse)!r})
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        member = "c_any"
        for argv in (("preview", "vip"), ("explain", "vip", member)):
            code, out, err = _run(capsys, *argv)
            assert code == 3 and not out
            assert err.strip() == (
                f"warehouse busy: a pipeline run is writing {home.warehouse.resolve()}; "
                "retry when it finishes"
            )
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)
    assert _run(capsys, "preview", "vip")[0] == 0  # free again once the run ends
