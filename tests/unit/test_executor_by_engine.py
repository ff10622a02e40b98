"""Dagster's executor and pools follow the warehouse engine: on DuckDB (one writer) a run's steps
go one after another in one process and every warehouse-writing step holds the `duckdb` pool; on
Postgres and Spark they run in parallel processes (C360_MAX_CONCURRENT at a time) with no pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import json
from collections import Counter
from orchestration.definitions import defs
job = defs().resolve_job_def("nightly")
pools = Counter(str(getattr(op, "pool", None)) for op in job.graph.node_defs)
print(json.dumps({"executor": job.executor_def.name, "pools": pools}))
"""


def _probe(tmp_path, **env: str) -> dict:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("C360_", "DAGSTER_"))
    } | {
        "C360_HOME": str(tmp_path), "C360_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "C360_LANDING_DIR": str(tmp_path / "landing"), "C360_OUTBOX_DIR": str(tmp_path / "out"),
        **env,
    }  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=environ, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_duckdb_runs_one_step_at_a_time_and_postgres_in_parallel(tmp_path):
    duck = _probe(tmp_path)
    assert duck["executor"] == "in_process"
    # every step and check of the nightly: ingestion, gates, dbt, Python steps, activation
    assert set(duck["pools"]) == {"duckdb"} and duck["pools"]["duckdb"] > 40
    pg = _probe(tmp_path, C360_DBT_TARGET="postgres", C360_MAX_CONCURRENT="3")
    assert pg["executor"] == "multiprocess"
    assert set(pg["pools"]) == {"None"} and sum(pg["pools"].values()) == duck["pools"]["duckdb"]
    spark = _probe(tmp_path, C360_DBT_TARGET="spark")  # one Thrift Server, many sessions
    assert spark["executor"] == "multiprocess" and spark["pools"] == pg["pools"]
    with pytest.raises(AssertionError, match="C360_MAX_CONCURRENT must be >= 1"):
        _probe(tmp_path, C360_DBT_TARGET="postgres", C360_MAX_CONCURRENT="0")
