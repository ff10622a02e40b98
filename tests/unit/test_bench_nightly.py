"""Pure helpers of bench/nightly.py and bench/nightly_reference.py: step timings from a run's event
log, the 1 % sample of a landing file, the reference's segment SQL and phone rule."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    """A bench script (bench/ is not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


nightly = _load("nightly")
reference = _load("nightly_reference")


def test_step_seconds_from_start_to_end_of_each_step() -> None:
    events = [
        (None, "RUN_START", 0.0),
        ("ingest", "STEP_START", 1.0),
        ("ingest", "STEP_OUTPUT", 2.0),
        ("ingest", "STEP_SUCCESS", 4.5),
        ("dbt", "STEP_START", 5.0),
        ("dbt", "STEP_FAILURE", 9.0),
        ("killed", "STEP_START", 10.0),  # never ended: left out
        (None, "RUN_SUCCESS", 12.0),
    ]
    assert nightly.step_seconds(events) == {"dbt": 4.0, "ingest": 3.5}


def test_step_seconds_keeps_the_first_start_and_the_last_end() -> None:
    events = [
        ("s", "STEP_START", 1.0),
        ("s", "STEP_FAILURE", 2.0),
        ("s", "STEP_START", 3.0),  # a retry of the same step
        ("s", "STEP_SUCCESS", 6.0),
    ]
    assert nightly.step_seconds(events) == {"s": 5.0}


def test_every_nth_line_keeps_the_header_and_one_data_line_in_n() -> None:
    lines = ["h\n", *(f"{i}\n" for i in range(250))]
    kept = list(nightly.every_nth_line(lines, 100, header=True))
    assert kept == ["h\n", "0\n", "100\n", "200\n"]
    assert list(nightly.every_nth_line(lines[1:], 100, header=False)) == ["0\n", "100\n", "200\n"]
    assert list(nightly.every_nth_line([], 100, header=True)) == []


def test_sample_snapshot_writes_one_row_in_n_per_file(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap" / "crm" / "contacts" / "dt=2026-11-23"
    snapshot.mkdir(parents=True)
    (snapshot / "part-00000.csv").write_text(
        "id,name\n" + "".join(f"{i},n{i}\n" for i in range(30))
    )
    parquet = tmp_path / "snap" / "consent" / "events" / "dt=2026-11-23"
    parquet.mkdir(parents=True)
    pq.write_table(pa.table({"id": [str(i) for i in range(25)]}), parquet / "part-00000.parquet")

    kept = nightly.sample_snapshot(tmp_path / "snap", tmp_path / "landing", 10)

    landed = tmp_path / "landing" / "crm" / "contacts" / "dt=2026-11-23" / "part-00000.csv"
    assert landed.read_text() == "id,name\n0,n0\n10,n10\n20,n20\n"
    table = pq.read_table(tmp_path / "landing" / "consent" / "events" / "dt=2026-11-23" /
                          "part-00000.parquet")  # fmt: skip
    assert table.column("id").to_pylist() == ["0", "10", "20"]
    assert kept == 6


def test_segment_statements_shift_dates_with_as_of() -> None:
    text = "-- header\n\n-- segment: a\nselect 1 where d >= date '2026-11-20';\n\n-- segment: b\nselect 2;\n"
    same = reference.segment_statements(text, dt.date(2026, 11, 21))
    later = reference.segment_statements(text, dt.date(2026, 11, 23))
    assert list(same) == ["a", "b"]
    assert same["a"] == "select 1 where d >= date '2026-11-20';"
    assert later["a"] == "select 1 where d >= date '2026-11-22';"
    assert later["b"] == "select 2;"


def test_segment_statements_cover_the_shipped_reference_file() -> None:
    statements = reference.segment_statements(
        reference.REFERENCE_SQL.read_text(), dt.date(2026, 11, 21)
    )
    assert len(statements) == 10
    assert all(sql.lower().startswith(("select", "with")) for sql in statements.values())


def test_phone_rule_gives_e164() -> None:
    con = duckdb.connect()
    rule_us = reference._phone("p", "c")
    rule_intl = reference._phone("p", None)
    cases = [
        ("+1 (212) 555-0134", "US", rule_us, "+12125550134"),
        ("(212) 555-0134", "US", rule_us, "+12125550134"),
        ("07400 123456", "GB", rule_us, "+447400123456"),
        ("0044 7400 123456", "GB", rule_intl, "+447400123456"),
        ("+33 6 12 34 56 78", None, rule_intl, "+33612345678"),
        ("12 34", "US", rule_us, None),
        (None, "US", rule_us, None),
    ]
    for value, country, rule, expected in cases:
        got = con.execute(f"select {rule} from (select ?::varchar as p, ?::varchar as c)",
                          [value, country]).fetchone()[0]  # fmt: skip
        assert got == expected, value


def test_stage_seconds_sums_steps_per_progress_stage() -> None:
    steps = {
        "staged__crm__contacts": 2.0,
        "staged__shop__orders": 3.0,
        "c360_dbt_1": 10.0,
        "c360_dbt_2": 5.5,
        "marts__customer_clv": 1.0,
    }
    assert nightly.stage_seconds(steps) == {
        "ingestion: stage new landing files": 5.0,
        "dbt build": 15.5,
        "marts/customer_clv": 1.0,
    }


def test_tree_rss_sees_a_child_and_step_peaks_attribute_samples_to_steps() -> None:
    import subprocess
    import time

    child = subprocess.Popen(
        [sys.executable, "-c", "import time; b = bytearray(300_000_000); time.sleep(20)"]
    )
    try:
        deadline, seen = time.monotonic() + 15, 0
        while time.monotonic() < deadline and seen < 300_000_000:
            seen = nightly.tree_rss(child.pid)
            time.sleep(0.1)
        assert seen >= 300_000_000  # the child's bytearray, resident
        import os

        assert nightly.tree_rss(os.getpid()) >= seen  # found below this process too
    finally:
        child.kill()
        child.wait()
    m = nightly.Measured("full", 10.0, 0, 0)
    m.rss = [(1.0, 5), (2.0, 9), (3.0, 4), (4.5, 7)]
    m.windows = {"a": (0.5, 2.5), "b": (2.6, 4.0), "c": (4.6, 5.0)}
    assert m.step_peaks() == {"a": 9, "b": 4, "c": 0}


def test_slopes_divide_each_seconds_ratio_by_the_customers_ratio() -> None:
    """Five times the customers at 3× the seconds is a slope of 0.6 (better than linear); a stage
    at 10× is 2.0; a stage without time at the smaller scale is left out."""
    small = {
        "customers": 200_000,
        "nights": {
            "full": {"seconds": 100.0, "steps": {"privacy__erasure": 10.0, "c360_dbt": 0.0}}
        },
        "reference": {"seconds": 20.0},
    }
    large = {
        "customers": 1_000_000,
        "nights": {
            "full": {"seconds": 300.0, "steps": {"privacy__erasure": 100.0, "c360_dbt": 40.0}},
            "no-new-data": {"seconds": 50.0, "steps": {}},
        },
        "reference": {"seconds": 100.0},
    }
    got = nightly.slopes(small, large)
    erasure = nightly.stage_seconds({"privacy__erasure": 1.0})
    assert got["full"] == 0.6 and got["reference"] == 1.0
    assert got[f"stage: {next(iter(erasure))}"] == 2.0
    assert "no-new-data" not in got and not any("dbt" in k for k in got)


def test_as_json_round_trips_the_figures_slopes_read() -> None:
    night = nightly.Measured("full", 12.5, 3 * 10**9, 0, steps={"a": 2.0}, windows={"a": (0, 1)})
    figures = nightly.as_json(1000, 11, [night], None)
    import json

    again = json.loads(json.dumps(figures))
    assert again["nights"]["full"]["seconds"] == 12.5 and again["reference"] is None
    assert nightly.slopes(again, {**again, "customers": 2000}) == {"full": 0.5, "stage: a": 0.5}


def test_dbt_node_seconds_sum_each_nodes_time_over_the_invocations(tmp_path: Path) -> None:
    timings = tmp_path / "run.dbt.jsonl"
    timings.write_text(
        '{"slowest": [["model.c360.a", 2.0], ["model.c360.b", 1.0]]}\n\n'
        '{"slowest": [["model.c360.a", 0.5]]}\n{"step": "old line without slowest"}\n'
    )
    assert nightly.dbt_node_seconds(timings) == {"model.c360.a": 2.5, "model.c360.b": 1.0}
    assert nightly.dbt_node_seconds(tmp_path / "missing.jsonl") == {}


def test_render_lists_each_table_in_the_full_nights_order(capsys) -> None:
    def night(name: str, scale: float) -> nightly.Measured:
        return nightly.Measured(
            name, 10.0 * scale, 2 * 10**9, 0,
            steps={"privacy__erasure": 3.0 * scale, "c360_dbt": 5.0 * scale},
            rss=[(0.5, 3 * 10**9), (1.5, 10**9)],
            windows={"c360_dbt": (0.0, 1.0), "privacy__erasure": (1.0, 2.0)},
            dbt_nodes={"model.c360.customer_360": 2.5 * scale},
        )  # fmt: skip

    full, quiet = night("full", 1.0), night("no-new-data", 0.5)
    full.scored_records, quiet.scored_records = 1_487_523, 0
    nightly.render([full, quiet], None, 5, "t")
    out = capsys.readouterr().out
    assert "1,487,523" in out and "re-used" in out  # what the probabilistic step did
    for title in ("seconds per stage", "slowest steps", "peak RSS by step", "slowest dbt nodes"):
        assert title in out
    steps = out[out.index("slowest steps") : out.index("peak RSS by step")]
    assert steps.index("c360_dbt") < steps.index("privacy__erasure")  # 5.0 s before 3.0 s
    assert "2.5" in steps and "1.5" in steps  # erasure on both nights
    peaks = out[out.index("peak RSS by step") : out.index("slowest dbt nodes")]
    assert "3.00" in peaks and "1.00" in peaks
    assert "1.2" in out[out.index("slowest dbt nodes") :]  # 2.5 x 0.5 on the second night


def test_measure_takes_the_peak_a_warm_dbt_command_reports(tmp_path: Path) -> None:
    """A night's dbt runs in the warm server's children, outside the night's process tree: the
    peak is the larger of the tree's ru_maxrss and what the dbt commands reported."""
    report = (
        "import json, os; open(os.environ['C360_DBT_WARM_PEAKS'], 'a').write("
        "json.dumps({'pid': 1, 'max_rss_bytes': 7_000_000_000}) + '\\n')"
    )
    env = {**__import__("os").environ, "C360_DBT_WARM_SOCKET": str(tmp_path / "none.sock")}
    reported = nightly.measure("full", [sys.executable, "-c", report], env, tmp_path / "a.out")
    assert reported.returncode == 0 and reported.peak_rss_bytes == 7_000_000_000
    alone = nightly.measure("full", [sys.executable, "-c", "pass"], env, tmp_path / "b.out")
    assert 0 < alone.peak_rss_bytes < 1_000_000_000, "the process's own peak, nothing stale"


def test_warm_server_pid_reads_the_lock_of_the_benchs_socket(tmp_path: Path) -> None:
    sock = tmp_path / "dbt-warm.sock"
    env = {"C360_DBT_WARM_SOCKET": str(sock)}
    assert nightly.warm_server_pid(env) is None
    Path(f"{sock}.lock").write_text("4242")
    assert nightly.warm_server_pid(env) == 4242
    assert nightly.warm_server_pid({}) is None


def test_scored_records_reads_the_probabilistic_steps_counts() -> None:
    assert nightly.scored_records({"records": 1_487_523, "reused": False, "links": 9}) == 1_487_523
    assert nightly.scored_records({"records": 1_487_523, "reused": True}) == 0
    changed = {"records": 1_487_525, "reused": False, "rescored_records": 990}
    assert nightly.scored_records(changed) == 990  # only the changed records' pairs
    assert nightly.scored_records({}) is None
