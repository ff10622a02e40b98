"""Erasure step of the nightly: after every raw asset (so tonight's requests and tonight's
records of the person are both in), before dbt (every staging model depends on it: marts never
show an erased person). Logic: orchestration/privacy/erasure.py; docs/privacy.md."""

from pathlib import Path

import dagster as dg

from orchestration.asset_args import nightly_asset
from orchestration.contracts.model import all_source_contracts
from orchestration.defs.resources import Warehouse
from orchestration.engine import table_exists
from orchestration.paths import outbox_dir
from orchestration.privacy import erasure as erasure_logic
from orchestration.privacy.erasure import RECEIPTS, erase_pending
from orchestration.privacy.retry import retry_pending
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["privacy", "erasure"])
CHECK = "destination_deletes_acknowledged"


@nightly_asset(
    key=KEY,
    # platform unsubscribes land in raw consent first (defs/privacy/platform_unsubscribes.py)
    deps=[dg.AssetKey(c.asset_key_path) for c in all_source_contracts()]
    + [dg.AssetKey(["privacy", "platform_unsubscribes"])]
    # raw phone texts are matched by the E.164 staging reads (privacy/column_index.py)
    + [dg.AssetKey(["reference", "phone_numbers"])],
    group_name="privacy",
    sources=(__file__, erasure_logic),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset=KEY,
            description="WARN when a receipt's destination delete ran out of attempts "
            "(audit.erasure_receipts.status = destinations_failed).",
        )
    ],
)
def erasure(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Retries the destination deletes of receipts left destinations_pending, then carries out every
    pending erasure request (raw.consent__erasure_requests, including `c360 erase`): the person's
    rows deleted from raw, quarantine, staging and every other table, contact_history pseudonymised,
    deletes sent to destinations, landing files and outbox drops rewritten, tombstones added; one
    row per request in audit.erasure_receipts."""
    with warehouse.connection() as con:
        # last nights' unacknowledged deletes first (bounded attempts, orchestration/privacy/retry.py)
        retried = retry_pending(con, log=context.log.info)
        summary = erase_pending(
            con,
            as_of_from(context),
            run_id=context.run_id,
            landing=Path(warehouse.landing_dir),
            outbox=outbox_dir(),
            log=context.log.info,
        )
        failed = _failed_count(con)
        receipts = con.execute("select count(*) from audit.erasure_receipts").fetchone()[0]
    if summary.destinations_pending:
        context.log.warning(
            f"erasure: {summary.destinations_pending} request(s) without an ok from every "
            "destination (audit.erasure_receipts.status = destinations_pending)"
        )
    return dg.MaterializeResult(
        metadata={
            "requests": summary.requests,
            "dagster/row_count": receipts,  # audit.erasure_receipts, one row per request ever
            "rows_touched": summary.rows,
            "files_touched": summary.files,
            "tombstones_added": summary.tombstones,
            "destinations_pending": summary.destinations_pending,
            "retried_receipts": retried.receipts,
            "retry_acknowledged": retried.acknowledged,
            "retry_failed": retried.failed,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=failed == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"destinations_failed": failed},
            )
        ],
    )


def _failed_count(con) -> int:
    """Receipts whose destination delete ran out of attempts (0 before the first erasure)."""
    if not table_exists(con, "audit", "erasure_receipts"):
        return 0
    return con.execute(
        f"select count(*) from {RECEIPTS} where status = 'destinations_failed'"
    ).fetchone()[0]


defs = dg.Definitions(assets=[erasure])
