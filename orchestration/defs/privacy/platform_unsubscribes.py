"""Platform unsubscribes step of the nightly: after the consent source is published, before the
erasure step (and so before every staging model and consent_state). Logic:
orchestration/privacy/platform_unsubscribes.py; docs/privacy.md."""

from pathlib import Path

import dagster as dg

from orchestration.asset_args import nightly_asset
from orchestration.contracts.model import all_source_contracts
from orchestration.defs.resources import Warehouse
from orchestration.ingest.wap import publish_batch, stage_batch
from orchestration.privacy import platform_unsubscribes as logic
from orchestration.privacy.platform_unsubscribes import collect
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["privacy", "platform_unsubscribes"])
_CONSENT = next(c for c in all_source_contracts() if c.id == "consent__events")


@nightly_asset(
    key=KEY,
    deps=[dg.AssetKey(_CONSENT.asset_key_path)],
    group_name="privacy",
    sources=(__file__, logic),
)
def platform_unsubscribes(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Asks every sync whose destination reports platform-side unsubscribes (Mailchimp) for those
    since its cursor (privacy.platform_unsubscribe_cursors), lands them as one consent/events
    landing file (revocations, consent_event_id platform_unsubscribe:<kind>:…) and publishes it
    through the consent contract's staging path, so consent_state revokes them the same night."""
    from orchestration.activation.syncs import load_all_syncs

    landing, as_of = Path(warehouse.landing_dir), as_of_from(context)
    with warehouse.connection() as con:
        got = collect(con, load_all_syncs(), landing, as_of, context.run_id, log=context.log.info)
        published = False
        if got.file is not None:
            # the same write-audit-publish path as the consent ingestion: quarantine and audit
            batch = stage_batch(con, _CONSENT, landing, as_of, context.run_id)
            published = publish_batch(con, _CONSENT, batch, context.run_id, landing)
    if got.failed:
        context.log.warning(f"platform unsubscribes: listing failed for {sorted(got.failed)}")
    return dg.MaterializeResult(
        metadata={
            "events": got.total,
            "dagster/row_count": got.total,  # consent events landed this night
            "events_by_sync": dg.MetadataValue.json(got.events),
            "failed_syncs": dg.MetadataValue.json(got.failed),
            "published": published,
        }
    )


defs = dg.Definitions(assets=[platform_unsubscribes])
