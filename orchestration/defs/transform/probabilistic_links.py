"""identity.probabilistic_links: record pairs without a shared key, matched by a Splink model.

Sits between the dbt models it reads (int_identity__records, int_identity__dropped_links) and
int_identity__edges, which unions the pairs in (a dbt source): Dagster runs the dbt build in two
steps around it.
"""

import dagster as dg

from orchestration.defs.resources import Warehouse
from orchestration.identity import config as identity_config
from orchestration.identity import probabilistic
from orchestration.run_model import ONE_DAY_PER_RUN, OWNER, as_of_from, nightly_partitions


@dg.asset(
    key=["identity", "probabilistic_links"],
    deps=[
        dg.AssetKey(["intermediate", "int_identity__records"]),
        dg.AssetKey(["intermediate", "int_identity__dropped_links"]),
    ],
    group_name="identity",
    owners=[OWNER],
    kinds={"duckdb", "python"},
    pool="duckdb",
    partitions_def=nightly_partitions,
    backfill_policy=ONE_DAY_PER_RUN,
    description=(
        "identity.probabilistic_links: one row per pair of source records sharing no email or "
        "phone whose Splink match probability (fixed model, names, email, phone, date of birth, "
        "address) is at least vars.identity.probabilistic.threshold, for this as_of. "
        "int_identity__edges links them as type probabilistic (lowest priority). Empty when "
        "vars.identity.probabilistic.enabled is false."
    ),
)
def probabilistic_links(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    settings = identity_config.load().probabilistic
    with warehouse.connection() as con:
        counts = probabilistic.refresh(
            con, as_of_from(context).isoformat(), settings.enabled, settings.threshold
        )
    context.log.info(
        f"probabilistic links: {counts.links:,} pairs at p >= {settings.threshold} among "
        f"{counts.records:,} records in {counts.seconds:.1f}s"
        + ("" if settings.enabled else " (disabled: vars.identity.probabilistic.enabled)")
    )
    return dg.MaterializeResult(
        metadata={
            **counts.metadata(),
            "enabled": settings.enabled,
            "threshold": dg.MetadataValue.float(settings.threshold),
        }
    )


defs = dg.Definitions(assets=[probabilistic_links])
