"""Test helpers for one entity's night in file mode, outside Dagster: what its staged asset, its
blocking meets_contract check and its raw asset do, in that order."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb

from orchestration.contracts.gx_suite import validate_table
from orchestration.contracts.model import source_contract
from orchestration.ingest.gate import GateOutcome, evaluate_gate
from orchestration.ingest.wap import StagedBatch, batch_table, publish_batch, stage_batch


def copy_landing(generated: Path, landing: Path, contract_id: str, day: dt.date) -> Path:
    """Copy the generator's file of one entity into `landing` under dt=<day>; returns its path."""
    c = source_contract(contract_id)
    src = next((generated / c.source / c.entity).rglob("part-00000.*"))
    folder = landing / c.source / c.entity / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, folder / src.name))


def night(
    con: duckdb.DuckDBPyConnection, contract_id: str, landing: Path, run: str, as_of: dt.date
) -> tuple[StagedBatch, GateOutcome, bool]:
    """One nightly for one entity: stage, gate, publish only when the gate passed."""
    contract = source_contract(contract_id)
    batch = stage_batch(con, contract, landing, as_of, run)
    suite = validate_table(con, contract, f"{batch_table(contract)}__clean")
    gate = evaluate_gate(contract, batch, suite)
    published = gate.passed and publish_batch(con, contract, batch, run, landing)
    return batch, gate, published
