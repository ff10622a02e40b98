"""The batch gate: decide whether a staged batch may be published, with evidence.

Blocking reasons (ERROR): contract columns missing from a file (schema drift), a quarantine share
above the contract's `maxQuarantineShare`, duplicates under a `block` duplicate policy, a failed
GX batch expectation, or row accounting that does not add up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestration.contracts.gx_suite import SuiteOutcome
from orchestration.contracts.model import Contract
from orchestration.ingest.wap import StagedBatch


@dataclass
class GateOutcome:
    passed: bool
    failures: list[str] = field(default_factory=list)


def evaluate_gate(contract: Contract, batch: StagedBatch, suite: SuiteOutcome) -> GateOutcome:
    failures: list[str] = []
    for path, cols in batch.missing_columns.items():
        failures.append(f"schema drift: {path} lacks contract column(s) {', '.join(cols)}")
    if batch.quarantine_share > contract.max_quarantine_share:
        failures.append(
            f"quarantine share {batch.quarantine_share:.2%} exceeds "
            f"{contract.max_quarantine_share:.2%} ({batch.quarantined} of {batch.extracted} rows)"
        )
    # Rows already published unchanged (a re-read range) are not duplicates of each other.
    in_batch = batch.deduplicated - batch.deduplicated_published
    if contract.duplicate_policy == "block" and in_batch:
        failures.append(f"{in_batch} duplicate primary keys under a 'block' policy")
    if not suite.success:
        failures.append("GX batch expectations failed: " + ", ".join(suite.failed_expectations))
    if batch.extracted != batch.loaded + batch.quarantined + batch.deduplicated:
        failures.append(
            f"row accounting: extracted {batch.extracted} != loaded {batch.loaded} + "
            f"quarantined {batch.quarantined} + deduplicated {batch.deduplicated}"
        )
    return GateOutcome(not failures, failures)
