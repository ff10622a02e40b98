"""The nightly job run in a test's process, for the engine e2e tests (Postgres, Spark): one
night of every asset for an as_of, and the columns two runs of the same night may differ in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from orchestration.contracts.model import all_source_contracts

# Columns a run stamps with its own clock or id (a contact's id hashes its run's id): the only
# ones two runs may differ in.
RUN_STAMPS = frozenset({"_loaded_at", "run_id", "evaluated_at", "fitted_at", "trained_at",
                        "computed_at", "created_at", "measured_at", "built_at", "seconds",
                        "sync_run_id", "contact_id", "consent_snapshot_at", "recorded_at",
                        "started_at", "finished_at", "duration_seconds"})  # fmt: skip


def run_nightly(job: dg.JobDefinition, keys: list[dg.AssetKey], as_of: dt.date) -> dict[str, int]:
    """One nightly of `keys` for `as_of`, in this process; every step and gate passes. Returns
    the `dagster/row_count` of each dbt model's materialization, by dbt unique_id (counted by
    dbt in the run, so equal on every engine for the same landing files)."""
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=as_of.isoformat(),
            asset_selection=keys,
            raise_on_error=False,
        )
        failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success, failed
        checks = result.get_asset_check_evaluations()
        gates = [c for c in checks if c.check_name == "meets_contract"]
        assert len(gates) == len(all_source_contracts()) and all(c.passed for c in gates)
        counts = {}
        for event in result.get_asset_materialization_events():
            metadata = event.event_specific_data.materialization.metadata
            if "unique_id" in metadata and "dagster/row_count" in metadata:
                counts[metadata["unique_id"].value] = metadata["dagster/row_count"].value
        return counts


def whole_nightly() -> tuple[dg.JobDefinition, list[dg.AssetKey]]:
    """The project's nightly job and every asset it can run (the whole night)."""
    from orchestration.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def("nightly")
    return job, list(definitions.resolve_asset_graph().executable_asset_keys)


def night_settings(landing: Path, root: Path) -> dict[str, str]:
    """The env a test's nightly needs besides the engine's: landing files, the outbox, spill
    and Dagster folders under `root`, and an erasure key."""
    return {
        "C360_LANDING_DIR": str(landing), "C360_OUTBOX_DIR": str(root / "outbox"),
        "C360_DUCKDB_TEMP_DIR": str(root / "tmp"), "DAGSTER_HOME": str(root / "dh"),
        "C360_ERASURE_KEY": "e2e-erasure-key-" + "0" * 32,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }  # fmt: skip


def use_engine(setenv: Callable[[str, str], None], engine: str, home: Path) -> None:
    """The next night on `engine`, with its own home (a DuckDB warehouse file in it that only
    the DuckDB engine creates)."""
    setenv("C360_DBT_TARGET", engine)
    setenv("C360_HOME", str(home))
    setenv("C360_WAREHOUSE", str(home / "wh.duckdb"))
