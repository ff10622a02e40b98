"""The trained probabilistic identity model: retrained on the warehouse's own records when due,
versioned in audit.identity_models; a check says when a fit was refused."""

import dagster as dg

from orchestration.asset_args import keys, nightly_asset
from orchestration.defs.resources import Warehouse
from orchestration.identity import config as identity_config
from orchestration.identity import training
from orchestration.run_model import as_of_from

KEY = dg.AssetKey(["identity_state", "identity_model"])


def _mu_markdown(rows: list[dict]) -> str:
    lines = ["| comparison | level | m | u | weight |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        m = "-" if r["m"] is None else f"{r['m']:.4g}"
        u = "-" if r["u"] is None else f"{r['u']:.4g}"
        lines.append(f"| {r['comparison']} | {r['level']} | {m} | {u} | {r['weight']} |")
    return "\n".join(lines)


@nightly_asset(
    key=KEY,
    deps=keys(
        "intermediate/int_identity__records",
        "intermediate/int_identity__dropped_links",
        "intermediate/int_identity__candidate_links",
    ),
    group_name="identity",
    sources=(__file__, training),
    check_specs=[
        dg.AssetCheckSpec(
            "model_accepted",
            asset=KEY,
            blocking=False,
            description=(
                "Warns when this run's training was refused as degenerate (match prior ≈ 0, "
                "m ≈ u on a comparison, EM not converged, no threshold reaching min_precision), "
                "naming the reason. Not blocking: a refused model is never used — the last "
                "accepted one (or the shipped fixed model) links tonight's records as before."
            ),
        )
    ],
)
def identity_model(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """audit.identity_models: the probabilistic model trained without labels on this warehouse's
    records (prior from the deterministic rules, u by random sampling, m by EM), one versioned row
    per training (parameters, records, as_of, m/u table, threshold, accepted or refused). Retrains
    when no model was accepted, when the accepted one is
    vars.identity.probabilistic.retrain_after_days old, or when the comparisons or blocking changed;
    otherwise keeps it."""
    settings = identity_config.load().probabilistic
    as_of = as_of_from(context)
    if not settings.enabled:
        outcome = None
    else:
        with warehouse.connection() as con:
            outcome = training.train(con, as_of, settings)
            # the table's rows (versions) when it exists: a model not yet due writes nothing
            rows = (
                con.execute(f"select count(*) from {training.TABLE}").fetchone()[0]
                if training._exists(con)
                else 0
            )
    if outcome is None:
        context.log.info("probabilistic matching disabled: no training")
        yield dg.MaterializeResult(metadata={"enabled": False})
        yield dg.AssetCheckResult(
            check_name="model_accepted", passed=True, description="probabilistic matching off"
        )
        return
    context.log.info(f"identity model: {outcome.summary()}")
    in_use = outcome.in_use
    shown = outcome.attempt or in_use
    metadata = {
        "summary": outcome.summary(),
        "model_in_use": f"v{in_use.version}" if in_use else "fixed (shipped)",
        "retrained": outcome.attempt is not None,
        "why": outcome.why or "current",
        "dagster/row_count": dg.MetadataValue.int(rows),
    }
    if shown is not None:
        metadata |= {f"model_{k}": v for k, v in shown.metadata().items() if v is not None}
        metadata["mu_table"] = dg.MetadataValue.md(_mu_markdown(shown.mu_table))
        metadata["training"] = dg.MetadataValue.json(shown.training)
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="model_accepted",
        passed=not outcome.refused,
        severity=dg.AssetCheckSeverity.WARN,
        description=outcome.summary(),
        metadata={"model_in_use": metadata["model_in_use"]},
    )


defs = dg.Definitions(assets=[identity_model])
