"""identity.probabilistic_links: record pairs without a shared key, matched by a Splink model.

Sits between the dbt models it reads (int_identity__records, int_identity__dropped_links) and
int_identity__edges, which unions the pairs in (a dbt source): Dagster runs the dbt build in two
steps around it.
"""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.identity import blocking, probabilistic, training
from orchestration.identity import config as identity_config
from orchestration.run_model import as_of_from


@nightly_asset(
    key=["identity", "probabilistic_links"],
    deps=keys(
        "intermediate/int_identity__records",
        "intermediate/int_identity__dropped_links",
        "identity_state/identity_model",
    ),
    group_name="identity",
    sources=(__file__, blocking, probabilistic, training),
)
def probabilistic_links(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    """identity.probabilistic_links: one row per pair of source records sharing no email or phone
    whose Splink match probability (the model trained on this warehouse's records,
    audit.identity_models, or the shipped fixed model until one is accepted) is at least the model's
    threshold (or vars.identity.probabilistic.threshold when a number), for this as_of.
    int_identity__edges links them as type probabilistic (lowest priority). Empty when
    vars.identity.probabilistic.enabled is false."""
    settings = identity_config.load().probabilistic
    with warehouse.connection() as con:
        model, threshold, label = training.model_in_use(con, settings)
        counts = probabilistic.refresh(
            con, as_of_from(context).isoformat(), settings.enabled, threshold, model
        )
        rows = con.execute(f"select count(*) from {probabilistic.TABLE}").fetchone()[0]
    # what the block-size cap skipped while scoring (blocking.py; none when nothing was scored,
    # re-used pairs included: the last report is then another linker's, training's or a past night's)
    cap = (
        blocking.last_report()
        if settings.enabled and counts.records >= 2 and not counts.reused
        else None
    )
    context.log.info(
        f"probabilistic links: {counts.links:,} pairs at p >= {threshold} (model {label}) among "
        f"{counts.records:,} records in {counts.seconds:.1f}s"
        + ("" if settings.enabled else " (disabled: vars.identity.probabilistic.enabled)")
        + (f"; blocks skipped by the size cap: {cap.describe()}" if cap else "")
    )
    return dg.MaterializeResult(
        metadata={
            **counts.metadata(),
            **(cap.metadata() if cap else {}),
            "enabled": settings.enabled,
            "model": label,
            "threshold": dg.MetadataValue.float(threshold),
            "dagster/row_count": dg.MetadataValue.int(rows),
        }
    )


defs = dg.Definitions(assets=[probabilistic_links])
