"""The nightly job run in a test's process, for the engine e2e tests (Postgres, Spark): one
night of every asset for an as_of, and the columns two runs of the same night may differ in."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from orchestration.contracts.model import all_source_contracts

# Columns a run stamps with its own clock or id (a contact's id hashes its run's id): the only
# ones two runs may differ in.
RUN_STAMPS = frozenset({"_loaded_at", "run_id", "evaluated_at", "fitted_at", "trained_at",
                        "computed_at", "created_at", "measured_at", "built_at", "seconds",
                        "sync_run_id", "contact_id", "consent_snapshot_at", "recorded_at",
                        "started_at", "finished_at", "duration_seconds"})  # fmt: skip


def run_nightly(job: dg.JobDefinition, keys: list[dg.AssetKey], as_of: dt.date) -> None:
    """One nightly of `keys` for `as_of`, in this process; every step and gate passes."""
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
