"""The over-merge circuit breaker: graph health after each resolution, and a blocking check that
keeps activation away from a graph that has blown up; a warning check when the limits refuse more
than `max_refused_link_share` of the candidate links (an under-merge: e.g. a source holding
duplicates that is not declared under `sources_with_duplicates`)."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.identity import config as identity_config
from orchestration.identity import graph_key, health, refusals
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["identity_state", "graph_health"])


@nightly_asset(
    key=KEY,
    deps=keys("marts/customer_id_map"),
    group_name="identity",
    sources=(__file__, graph_key, health, refusals),
    check_specs=[
        dg.AssetCheckSpec(
            "graph_within_bounds",
            asset=KEY,
            blocking=True,
            description=(
                "Fails when the largest customer or the merge rate against the last measured run "
                "(of any as_of: a same-day rerun compares with the day's earlier run) "
                "passes vars.identity.circuit_breaker, naming the (masked) identifier values "
                "holding the cluster together. Activation depends on it."
            ),
        ),
        dg.AssetCheckSpec(
            "refused_links_share",
            asset=KEY,
            blocking=False,
            description=(
                "Warns when the links refused by identity's limits and guards (blocklist, "
                "max_records_per_value, birth-date and first-name guards, max_per_customer) pass "
                "vars.identity.max_refused_link_share of the candidate links, naming the limits "
                "that refused them and how many each (e.g. max_per_customer:crm_contact_id: a "
                "source with duplicate records not declared in sources_with_duplicates)."
            ),
        ),
    ],
)
def identity_graph_health(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """audit.identity_graph_health: one row per run with customers, records, the largest cluster,
    identifiers per customer, merges, splits and the merge rate against the last measured run,
    whatever its as_of."""
    config = identity_config.load()
    bounds = config.circuit_breaker
    as_of = as_of_from(context)
    with warehouse.connection() as con:
        # a graph this run's dbt build left as an earlier measured run had it: its figures hold
        key = graph_key.graph_key(con, context.run_id)
        known = health.known_figures(con, key)
        measured = health.measure(con, as_of, context.run_id, None if known is None else known[0])
        refused = known[1] if known else refusals.measure(con) or refusals.Refusals(0)
        health.record(con, measured, context.run_id, key, refused)
        rows = con.execute(f"select count(*) from {health.TABLE}").fetchone()[0]
    meta = measured.metadata()
    problems = measured.violations(bounds)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(rows),
            **{k: v for k, v in meta.items() if k != "largest_cluster_values"},
            "largest_cluster_values": dg.MetadataValue.json(meta["largest_cluster_values"]),
        }
    )
    yield dg.AssetCheckResult(
        check_name="graph_within_bounds",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or "within bounds",
        metadata={
            "largest_cluster_records": measured.largest_cluster_records,
            "max_cluster_records": bounds.max_cluster_records,
            "merge_rate": round(measured.merge_rate, 6),
            "max_merge_rate": bounds.max_merge_rate,
            "largest_cluster_values": dg.MetadataValue.json(meta["largest_cluster_values"]),
        },
    )
    max_share = config.max_refused_link_share
    yield dg.AssetCheckResult(
        check_name="refused_links_share",
        passed=not refused.exceeds(max_share),
        severity=dg.AssetCheckSeverity.WARN,
        description=refused.message(max_share),
        # the run summary prints these two (pipeline._measured_refusals) instead of counting again
        metadata={
            "candidate_links": refused.candidate_links,
            "refused_links": refused.refused,
            "refused_share": round(refused.share, 6),
            "max_refused_link_share": max_share,
            "refused_by_limit": dg.MetadataValue.json(refused.by_limit),
            "sources_with_duplicates": dg.MetadataValue.json(list(config.sources_with_duplicates)),
        },
    )


defs = dg.Definitions(assets=[identity_graph_health])
