"""Blocking gates generated from data_contracts/sources/: one per entity, on its staged batch.

A failed gate stops the publish step (and everything downstream) in the same run: the batch stays
in staging, the cursor does not move, nothing reaches raw, the marts or a customer.
"""

import dagster as dg

from orchestration.contracts.gx_suite import validate_frame
from orchestration.contracts.model import Contract, all_source_contracts
from orchestration.defs.resources import Warehouse
from orchestration.ingest.gate import evaluate_gate
from orchestration.ingest.wap import batch_table, load_staged


def _md_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    cols = list(rows[0])
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "\n".join("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows)


def build_contract_gate(contract: Contract) -> dg.AssetChecksDefinition:
    staged_key = dg.AssetKey(["staged", contract.source, contract.entity])
    contract_file = f"data_contracts/sources/{contract.id}.odcs.yaml"

    @dg.asset_check(
        asset=staged_key,
        name="meets_contract",
        blocking=True,
        pool="duckdb",
        description=f"The staged batch satisfies {contract_file}: no schema drift, quarantine "
        "share within bounds, keys unique after dedup (GX), rows accounted for.",
    )
    def _gate(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connection(read_only=False) as con:
            batch = load_staged(con, contract, context.run.run_id)
            frame = con.execute(
                f"select * exclude (_source_file) from {batch_table(contract)}__clean"
            ).fetchdf()
        if batch is None:
            raise dg.Failure(f"{contract.id}: no staged batch found for run {context.run.run_id}")
        suite = validate_frame(contract, frame)
        outcome = evaluate_gate(contract, batch, suite)
        for failure in outcome.failures:
            context.log.error(f"{contract.id}: {failure}")
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(outcome.failures) or "batch meets its contract",
            metadata={
                "failures": dg.MetadataValue.json(outcome.failures),
                "extracted": batch.extracted,
                "quarantined": batch.quarantined,
                "quarantine_share": round(batch.quarantine_share, 6),
                "max_quarantine_share": contract.max_quarantine_share,
                "quarantined_by_rule": dg.MetadataValue.json(batch.quarantined_by_rule),
                "missing_columns": dg.MetadataValue.json(batch.missing_columns),
                "gx_expectations_evaluated": suite.evaluated,
                "gx_failed_expectations": dg.MetadataValue.json(suite.failed_expectations),
                "sample_rows_masked": dg.MetadataValue.md(_md_table(batch.masked_samples)),
            },
        )

    return _gate


defs = dg.Definitions(asset_checks=[build_contract_gate(c) for c in all_source_contracts()])
