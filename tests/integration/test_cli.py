"""The `c360` CLI on the session's pipeline home: read-only commands print counts, never PII."""

import csv
import datetime as dt

import pytest

from orchestration.cli import main
from tests.integration.conftest import AS_OF

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]


def _emails(home) -> list[str]:
    with (home.truth / "ground_truth.csv").open() as fh:
        assert list(csv.DictReader(fh))
    import duckdb

    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        return [
            r[0]
            for r in con.execute(
                "select email from marts.customer_360 where email is not null limit 200"
            ).fetchall()
        ]


def test_summary_prints_counts_and_no_personal_data(pipeline, capsys):
    home, _ = pipeline
    assert main(["summary", "--as-of", AS_OF.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "marts.customer_360" in out and "pairwise precision" in out
    assert not [e for e in _emails(home) if e in out]


def test_summary_of_a_date_never_run_says_so_in_one_line(pipeline, capsys):
    never = AS_OF - dt.timedelta(days=3)
    assert main(["summary", "--as-of", never.isoformat()]) == 1
    out, err = capsys.readouterr()
    assert "nightly summary" not in out and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"c360 summary: no run for {never.isoformat()}: the warehouse holds runs for "
        f"{AS_OF.isoformat()}; run `c360 run --as-of {never.isoformat()}` first"
    ]


def test_sync_dry_run_lists_planned_rows_per_sync_without_sending(pipeline, capsys):
    home, _ = pipeline
    before = sorted(p.stat().st_mtime_ns for p in home.outbox.rglob("*.*"))
    assert main(["sync", "--dry-run", "--as-of", AS_OF.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "file_drop__lapsed_high_value" in out and "file_drop__vip_sms" in out
    # the nightly run already recorded this as_of: nothing new would be sent
    assert "nothing to do" in out
    assert sorted(p.stat().st_mtime_ns for p in home.outbox.rglob("*.*")) == before


def test_identity_evaluate_scores_a_user_truth_file(pipeline, capsys, tmp_path):
    home, _ = pipeline
    assert main(["identity", "evaluate", "--truth", str(home.truth / "ground_truth.csv")]) == 0
    out = capsys.readouterr().out
    assert "pairwise precision" in out and "pairwise recall" in out and "pairwise F1" in out
    assert "all records" in out and "identified" in out and "largest customer" in out
    bad = tmp_path / "truth.csv"
    bad.write_text("id,person\n1,2\n")
    assert main(["identity", "evaluate", "--truth", str(bad)]) == 2
    assert f"{bad}: truth file lacks column(s)" in capsys.readouterr().err


def test_segments_validate_and_compile_check(capsys):
    assert main(["segments", "validate"]) == 0
    assert main(["segments", "compile", "--check"]) == 0
    assert "current" in capsys.readouterr().out
