"""A run's console: stages named from step keys; its dbt and Dagster output (Python's stdout and
stderr, and subprocesses writing to descriptors 1 and 2) routed to a log file, then restored."""

import io
import subprocess
import sys

from orchestration.progress import NightlyProgress, stage_of
from orchestration.run_logs import output_to


def test_steps_are_named_by_stage():
    assert stage_of("staged__crm__contacts") == "ingestion: stage new landing files"
    assert stage_of("staged__crm__contacts_meets_contract") == "ingestion: contract checks"
    assert stage_of("crm__contacts") == "ingestion: publish to raw"
    assert stage_of("c360_dbt_2") == "dbt build"
    assert stage_of("activation__file_drop") == "activation"
    assert stage_of("marts__customer_clv") == "marts/customer_clv"  # unknown: its own stage


def test_output_goes_to_the_log_and_comes_back(tmp_path, capfd):
    log = tmp_path / "logs" / "run.log"
    with output_to(log):
        print("python stdout")
        print("python stderr", file=sys.stderr)
        subprocess.run(["sh", "-c", "echo child stdout; echo child stderr >&2"], check=True)
    print("after")
    out, err = capfd.readouterr()
    assert out == "after\n" and err == ""
    text = log.read_text()
    for line in ("python stdout", "python stderr", "child stdout", "child stderr"):
        assert line in text


def test_progress_prints_a_line_per_stage_without_a_terminal():
    class Event:
        def __init__(self, kind, step):
            self.step_key = step
            self.run_id = "r"
            self.dagster_event = type("E", (), {"event_type_value": kind})()

    stream = io.StringIO()
    with NightlyProgress(stream) as shown:
        for step in ("staged__crm__contacts", "staged__shop__orders", "c360_dbt"):
            shown.on_event(Event("STEP_START", step))
            shown.on_event(Event("STEP_SUCCESS", step))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "✓ ingestion: stage new landing files" in lines[0] and "2 steps" in lines[0]
    assert "✓ dbt build" in lines[1] and "1 step" in lines[1]
