"""Blocking gates generated from data_contracts/sources/, two per entity:

* `meets_contract` on the staged batch (before publish): schema drift (missing, renamed, retyped
  columns), quarantine share, duplicates, future timestamps, volume drop, a stale source, GX batch
  expectations and row accounting against an independent count of the files. A failure stops the
  publish step (and everything downstream) in the same run: the batch stays in staging, the cursor
  does not move, nothing reaches raw, the marts or a customer.
* `published_as_accounted` on the raw table (after publish): what publish actually wrote (raw and
  quarantine rows by _batch_id, the audit row) matches the staged plan and the file count. It
  cannot un-publish, but it stops dbt and activation from building on a publish that lost rows.
"""

import dagster as dg

from orchestration.contracts.gx_suite import validate_table
from orchestration.contracts.masking import mask_rows
from orchestration.contracts.model import Contract, all_source_contracts
from orchestration.defs.resources import Warehouse
from orchestration.ingest.gate import GateOutcome, evaluate_gate
from orchestration.ingest.report import BatchReport
from orchestration.ingest.wap import StagedBatch, batch_table, load_staged
from orchestration.warehouse import warehouse_pool


def _md_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    cols = list(rows[0])
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "\n".join("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows)


def _samples_md(contract: Contract, outcome: GateOutcome) -> str:
    """One section per failure: rule, column, message and its sample rows, masked again by
    allow-list at this edge (masking.mask_rows; values already masked stay as they are)."""
    if not outcome.details:
        return "(no failures)"
    parts = []
    for d in outcome.details:
        rows = mask_rows(contract, d.samples)
        parts.append(f"**{d.rule}** — column `{d.column}`\n\n{d.message}\n\n{_md_table(rows)}")
    return "\n\n".join(parts)


def build_contract_gate(contract: Contract) -> dg.AssetChecksDefinition:
    staged_key = dg.AssetKey(["staged", contract.source, contract.entity])
    contract_file = f"data_contracts/sources/{contract.id}.odcs.yaml"

    @dg.asset_check(
        asset=staged_key,
        name="meets_contract",
        blocking=True,
        pool=warehouse_pool(),
        description=f"The staged batch satisfies {contract_file}: no schema drift, quarantine "
        "share within bounds, keys unique after dedup (GX), rows accounted for.",
    )
    def _gate(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connection(read_only=False) as con:
            batch = load_staged(con, contract, context.run.run_id)
            if batch is None:
                raise dg.Failure(
                    f"{contract.id}: no staged batch found for run {context.run.run_id}"
                )
            suite = validate_table(con, contract, f"{batch_table(contract)}__clean")
        outcome = evaluate_gate(contract, batch, suite)
        # Before returning: a blocked batch is exactly when someone opens the report.
        report = BatchReport(contract, batch, context.run.run_id, outcome, suite).write()
        for failure in outcome.failures:
            context.log.error(f"{contract.id}: {failure}")
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(outcome.failures) or "batch meets its contract",
            metadata={
                "failures": dg.MetadataValue.json(outcome.failures),
                "failure_details": dg.MetadataValue.json(outcome.details_json()),
                "failure_samples_masked": dg.MetadataValue.md(_samples_md(contract, outcome)),
                "notes": dg.MetadataValue.json(outcome.notes),
                "quality_report": dg.MetadataValue.path(str(report)),
                "extracted": batch.extracted,
                "staged": batch.staged,
                "loaded": batch.loaded,
                "quarantined": batch.quarantined,
                "deduplicated": batch.deduplicated,
                "rows_by_file": dg.MetadataValue.json(
                    {
                        p: {"counted": n, "staged": batch.staged_rows_by_file.get(p, 0)}
                        for p, n in batch.files_rows.items()
                    }
                ),
                "quarantine_share": round(batch.quarantine_share, 6),
                "max_quarantine_share": contract.max_quarantine_share,
                "quarantined_by_rule": dg.MetadataValue.json(batch.quarantined_by_rule),
                "missing_columns": dg.MetadataValue.json(batch.missing_columns),
                "extra_columns": dg.MetadataValue.json(batch.extra_columns),
                "retyped_columns": dg.MetadataValue.json(batch.retyped_columns),
                "duplicate_share": round(batch.duplicate_share, 6),
                "future_rows_by_column": dg.MetadataValue.json(batch.future_by_column),
                "volume": dg.MetadataValue.json(batch.volume),
                "freshness": dg.MetadataValue.json(batch.freshness),
                "gx_expectations_evaluated": suite.evaluated,
                "gx_failed_expectations": dg.MetadataValue.json(suite.failed_expectations),
                "sample_rows_masked": dg.MetadataValue.md(
                    _md_table(mask_rows(contract, batch.masked_samples))
                ),
            },
        )

    return _gate


def published_mismatches(con, contract: Contract, batch: StagedBatch) -> tuple[list[str], dict]:
    """Compare what publish wrote for `batch` with the staged plan and the independent count."""
    b = batch.batch_id

    def of_batch(sql: str) -> tuple | None:
        return con.execute(sql, [b]).fetchone()

    raw = of_batch(f"select count(*) from raw.{contract.id} where _batch_id = ?")
    quarantine = of_batch(f"select count(*) from quarantine.{contract.id} where _batch_id = ?")
    audit = of_batch(
        "select extracted, loaded, quarantined, deduplicated from audit.ingestion_audit "
        "where batch_id = ?"
    )
    files = of_batch("select count(*) from audit.ingestion_files where batch_id = ?")[0]
    counts = {"raw_rows": raw[0], "quarantine_rows": quarantine[0], "files": files}
    problems = []
    if audit is None:
        return [f"row accounting: batch {b} has no audit.ingestion_audit row"], counts
    counts |= dict(zip(("extracted", "loaded", "quarantined", "deduplicated"), audit, strict=True))
    if raw[0] != batch.loaded:
        problems.append(
            f"raw.{contract.id} holds {raw[0]} row(s) of batch {b}, staged {batch.loaded}"
        )
    if quarantine[0] != batch.quarantined:
        problems.append(
            f"quarantine.{contract.id} holds {quarantine[0]} row(s) of batch {b}, "
            f"staged {batch.quarantined}"
        )
    if files != len(batch.files):
        problems.append(f"audit.ingestion_files lists {files} file(s), staged {len(batch.files)}")
    if audit[0] != sum(batch.files_rows.values()):
        problems.append(f"audit extracted {audit[0]} != {sum(batch.files_rows.values())} counted")
    # rows of an erased person were dropped as read (privacy/tombstones.py), counted as erased
    if audit[0] != raw[0] + quarantine[0] + audit[3] + batch.erased:
        problems.append(
            f"extracted {audit[0]} != raw {raw[0]} + quarantine {quarantine[0]} + "
            f"deduplicated {audit[3]} + erased {batch.erased}"
        )
    return [f"row accounting after publish: {p}" for p in problems], counts


def build_publish_check(contract: Contract) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(contract.asset_key_path),
        name="published_as_accounted",
        blocking=True,
        pool=warehouse_pool(),
        description=f"What publish wrote for this run's batch of {contract.id} (raw and quarantine "
        "rows by _batch_id, the audit row, the file cursor) adds up to the records counted in "
        "its files.",
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        with warehouse.connection() as con:
            batch = load_staged(con, contract, context.run.run_id)
            status = (
                con.execute(
                    "select status from audit.ingestion_batches where batch_id = ? "
                    "and run_id = ? order by staged_at desc limit 1",
                    [batch.batch_id, context.run.run_id],
                ).fetchone()
                if batch is not None and batch.batch_id
                else None
            )
            if not status or status[0] != "published":
                return dg.AssetCheckResult(
                    passed=True,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description="nothing published by this run",
                )
            problems, counts = published_mismatches(con, contract, batch)
        for p in problems:
            context.log.error(f"{contract.id}: {p}")
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(problems) or "published rows add up",
            metadata={
                "failures": dg.MetadataValue.json(problems),
                "failure_details": dg.MetadataValue.json(
                    [
                        {"rule": "accounting.published", "column": "(batch)", "message": p}
                        for p in problems
                    ]
                ),
                "batch_id": batch.batch_id,
                "counts": dg.MetadataValue.json(counts),
            },
        )

    return _check


defs = dg.Definitions(
    asset_checks=[build_contract_gate(c) for c in all_source_contracts()]
    + [build_publish_check(c) for c in all_source_contracts()]
)
