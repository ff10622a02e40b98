"""Every `c360` command on an empty C360_HOME: an exit code and one line on stderr naming what to
do, never a traceback. Then one nightly run on that home (no landing files at all): progress on
the console, dbt and Dagster output in <C360_HOME>/logs/<run_id>.log, a summary that says no
new landing files were found, and a summary of a date never run that says so and exits 1."""

import contextlib
import datetime as dt
import io
import subprocess
import sys

import pytest

from orchestration.cli import main
from tests.integration.conftest import make_home

# one worker runs the module: its run's home is shared by the tests after it
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="empty_home")]

AS_OF = dt.date(2026, 11, 21)


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """A fresh, empty home with every C360_* env var pointing into it."""
    monkeypatch.delenv("C360_CRM_DSN", raising=False)
    return make_home(tmp_path / "home", monkeypatch)


@pytest.fixture(scope="module")
def empty_run(tmp_path_factory):
    """One nightly run on a home without any landing file: (home, exit code, stdout, stderr)."""
    with pytest.MonkeyPatch.context() as mp:
        home = make_home(tmp_path_factory.mktemp("c360_empty_run"), mp)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["run", "--as-of", AS_OF.isoformat(), "--log-level", "WARNING"])
        yield home, code, out.getvalue(), err.getvalue()


def _one_line_error(capsys) -> tuple[str, str]:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return out, lines[0]


# every command that needs a warehouse says the same: where it looked and what to run
NO_WAREHOUSE = "warehouse.duckdb: run `c360 generate` and `c360 run` first"


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["summary"], 1, NO_WAREHOUSE),
        (["summary", "--as-of", "2026-13-01"], 2, "not a date"),
        (["sync", "--dry-run"], 1, NO_WAREHOUSE),
        (["sync"], 2, "sync --dry-run"),
        (["segments", "preview", "vip"], 1, NO_WAREHOUSE),
        (["segments", "explain", "vip", "c_1"], 1, NO_WAREHOUSE),
        (["identity", "explain", "someone@example.com"], 1, NO_WAREHOUSE),
        (["identity", "train"], 1, NO_WAREHOUSE),
        (["identity", "evaluate"], 2, "truth file not found"),
        (["sources", "load-crm"], 2, "C360_CRM_DSN is not set"),
        (["run", "--as-of", "yesterday"], 2, "not a date"),
        (["no-such-command"], 2, "invalid choice"),
    ],
)
def test_command_on_an_empty_home_fails_in_one_line(empty_home, capsys, argv, code, says):
    assert main(argv) == code
    _, line = _one_line_error(capsys)
    assert says in line


def test_console_script_prints_one_line_not_a_traceback(empty_home):
    """The entry point in its own process: what a user sees."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "sync", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "c360 sync: no warehouse at" in done.stderr


def test_run_without_landing_files_says_so_quietly(empty_run):
    home, code, out, err = empty_run
    assert code == 0, out + err
    assert "Traceback" not in out + err
    # progress per stage on the console; dbt and Dagster output in the run's log file
    assert "✓ ingestion: stage new landing files" in out and "✓ dbt build" in out
    assert "Running with dbt" not in out + err
    logs = [p for p in (home.home / "logs").glob("*.log") if p.name != "cli-errors.log"]
    assert len(logs) == 1 and "Running with dbt" in logs[0].read_text()
    assert str(logs[0]) in out
    assert "no new landing files for any source since the last run" in out


def test_summary_reads_only_the_asked_as_of(empty_run, capsys):
    assert main(["summary", "--as-of", AS_OF.isoformat()]) == 0
    out, _ = capsys.readouterr()
    assert f"as_of {AS_OF.isoformat()}" in out and "no new landing files" in out
    never = AS_OF - dt.timedelta(days=1)
    assert main(["summary", "--as-of", never.isoformat()]) == 1
    out, line = _one_line_error(capsys)
    assert f"no run for {never.isoformat()}" in line and AS_OF.isoformat() in line
    assert "nightly summary" not in out


def test_sync_dry_run_after_an_empty_run(empty_run, capsys):
    assert main(["sync", "--dry-run", "--as-of", AS_OF.isoformat()]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "nothing to do" in out
