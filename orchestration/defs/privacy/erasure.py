"""Erasure step of the nightly: after every raw asset (so tonight's requests and tonight's
records of the person are both in), before dbt (every staging model depends on it: marts never
show an erased person). Logic: orchestration/privacy/erasure.py; docs/privacy.md."""

from pathlib import Path

import dagster as dg

from orchestration.contracts.model import all_source_contracts
from orchestration.defs.resources import Warehouse
from orchestration.paths import outbox_dir
from orchestration.privacy.erasure import erase_pending
from orchestration.run_model import ONE_DAY_PER_RUN, OWNER, as_of_from, nightly_partitions

KEY = dg.AssetKey(["privacy", "erasure"])


@dg.asset(
    key=KEY,
    # platform unsubscribes land in raw consent first (defs/privacy/platform_unsubscribes.py)
    deps=[dg.AssetKey(c.asset_key_path) for c in all_source_contracts()]
    + [dg.AssetKey(["privacy", "platform_unsubscribes"])],
    group_name="privacy",
    owners=[OWNER],
    kinds={"duckdb", "python"},
    pool="duckdb",
    partitions_def=nightly_partitions,
    backfill_policy=ONE_DAY_PER_RUN,
    description=(
        "Carries out every pending erasure request (raw.consent__erasure_requests, including "
        "`c360 erase`): the person's rows deleted from raw, quarantine, staging and every other "
        "table, contact_history pseudonymised, deletes sent to destinations, landing files and "
        "outbox drops rewritten, tombstones added; one row per request in audit.erasure_receipts."
    ),
)
def erasure(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.connection() as con:
        summary = erase_pending(
            con,
            as_of_from(context),
            run_id=context.run_id,
            landing=Path(warehouse.landing_dir),
            outbox=outbox_dir(),
            log=context.log.info,
        )
    if summary.destinations_pending:
        context.log.warning(
            f"erasure: {summary.destinations_pending} request(s) without an ok from every "
            "destination (audit.erasure_receipts.status = destinations_pending)"
        )
    return dg.MaterializeResult(
        metadata={
            "requests": summary.requests,
            "rows_touched": summary.rows,
            "files_touched": summary.files,
            "tombstones_added": summary.tombstones,
            "destinations_pending": summary.destinations_pending,
        }
    )


defs = dg.Definitions(assets=[erasure])
