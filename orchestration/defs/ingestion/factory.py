"""Build the write-audit-publish assets of one source: per entity a staged batch (its blocking
contract gate is in defs/quality) and the raw table (asset key == dbt source key, e.g. ["crm", "contacts"]).

In live mode (C360_<SOURCE>_MODE=live, crm and shop) the staged step first extracts the source's
new rows into the landing layout (orchestration/extract/live.py); staging, gate and publish are
the same code path as file mode."""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.asset_args import nightly_asset
from orchestration.contracts.masking import clean_phone, mask_value
from orchestration.contracts.model import Contract, all_source_contracts
from orchestration.defs.resources import Warehouse
from orchestration.extract.config import source_mode
from orchestration.ingest import landing as landing_module
from orchestration.ingest import wap
from orchestration.ingest.gate import mask_column_names
from orchestration.ingest.landing import LandingFileError
from orchestration.ingest.report import BatchReport, report_path
from orchestration.ingest.wap import (
    StagedBatch,
    batch_table,
    load_staged,
    publish_batch,
    stage_batch,
)
from orchestration.run_model import as_of_from

# Tag naming an ingestion asset's layer: "staged" (the batch before publish) or "raw".
LAYER_TAG = "c360/layer"
# What discovery refused, by kind (landing.discover_landing's reasons open with these words).
REFUSED_KINDS = {
    "symbolic link to": "link_outside_landing",
    "broken symbolic link": "broken_link",
    "partition folder": "invalid_dt_folder",
    "folder cannot be listed": "unlistable_folder",
}
# A path part shown as it is: a plain file or folder name (glob characters and `dt=` included).
_PLAIN_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=\-\[\]*?]{0,127}")


def refused_kind(why: str) -> str:
    return next((k for start, k in REFUSED_KINDS.items() if why.startswith(start)), "other")


def shown_path(path: str, landing: Path) -> str:
    """A landing path as the asset's metadata shows it: relative to the landing folder (never
    the machine's own folders, nor where a refused link points), each part as it is when it is a
    plain name, else masked (masking.mask_value: a file named after an e-mail or a phone shows
    its hint only)."""
    p = Path(path)
    try:
        parts = p.relative_to(landing).parts
    except ValueError:
        parts = (p.name,)
    shown = []
    for part in parts:
        stem, dot, suffix = part.rpartition(".")
        if not dot or not suffix.isalnum():
            stem, dot, suffix = part, "", ""
        if _PLAIN_PART.fullmatch(part) and clean_phone(stem) is None:
            shown.append(part)
        else:  # the name masked, its suffix (.csv, .jsonl, .parquet) kept
            shown.append((mask_value(stem, "auto") or "***") + dot + suffix)
    return "/".join(shown)


def discovery_metadata(batch: StagedBatch, landing: Path) -> dict[str, dg.MetadataValue | int]:
    """What discovery refused (links leaving the landing folder, broken links, invalid `dt=`
    folders, folders that cannot be listed) and the files recorded without a read (the same
    bytes as a file already published or earlier in the batch): counts and shown names."""
    kinds: dict[str, int] = {}
    refused = []
    for path, why in sorted(batch.refused.items()):
        kind = refused_kind(why)
        kinds[kind] = kinds.get(kind, 0) + 1
        refused.append({"path": shown_path(path, landing), "kind": kind})
    return {
        "refused": len(refused),
        "refused_by_kind": dg.MetadataValue.json(kinds),
        "refused_paths": dg.MetadataValue.json(refused),
        "same_content": len(batch.same_content),
        "same_content_paths": dg.MetadataValue.json(
            {
                shown_path(p, landing): shown_path(first, landing)
                for p, first in sorted(batch.same_content.items())
            }
        ),
    }


def _entity_assets(contract: Contract) -> list[dg.AssetsDefinition]:
    staged_key = dg.AssetKey(["staged", contract.source, contract.entity])
    raw_key = dg.AssetKey(contract.asset_key_path)
    contract_file = f"data_contracts/sources/{contract.id}.odcs.yaml"

    def layer_asset(layer: str, kind: str, table: str, **kwargs: Any) -> Callable:
        """An ingestion asset of `layer` writing `table`. The UI labels a node with its key's last
        part, which the staged batch and the raw table share: the kind, the layer tag, the table
        name and the description's first words tell the two apart."""
        return nightly_asset(
            group_name="ingestion",
            kinds={"duckdb", kind},
            tags={LAYER_TAG: layer},
            metadata={"dagster/table_name": table},
            # staging, gate rules and publish live in these modules; the contract decides the columns
            sources=(__file__, wap, landing_module, contract.path),
            **kwargs,
        )

    @layer_asset(
        "staged",
        "staging",
        f"{batch_table(contract)}__clean",
        key=staged_key,
        description=(
            f"Staged batch of {contract.source}/{contract.entity} (before publish): "
            f"the new landing files staged as one batch in "
            f"{batch_table(contract)}__verdicts, split by {contract_file} into clean and "
            f"quarantined rows and deduplicated into {batch_table(contract)}__clean. One row per "
            "landed record; nothing is published yet."
        ),
    )
    def _staged(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        landing, as_of = Path(warehouse.landing_dir), as_of_from(context)
        extraction: dict = {}
        with warehouse.connection() as con:
            if source_mode(contract.source) == "live":
                from orchestration.extract.live import extract_to_landing

                extraction = extract_to_landing(con, contract, landing, as_of).as_metadata()
                context.log.info(
                    f"{contract.id}: live extraction read {extraction['rows']} row(s) with "
                    f"updated_at in [{extraction['since']}, {extraction['until']}) "
                    f"(published cursor {extraction['cursor']})"
                )
            try:
                batch = stage_batch(
                    con, contract, landing, as_of, context.run_id, extraction=extraction
                )
            except LandingFileError as error:
                # the message names the file, line and what is wrong: the step fails with it
                # alone, not with a trace of our loader (nothing was staged or published)
                raise dg.Failure(
                    description=f"{contract.id}: {error} (nothing was published; fix or replace "
                    "the file and rerun)",
                    metadata={"file_error": str(error)},
                    allow_retries=False,
                ) from None
        # Written now with the gates pending (a gate that crashes still leaves the counts);
        # the meets_contract check rewrites the same page with its verdicts.
        report = BatchReport(contract, batch, context.run_id).write()
        context.log.info(
            f"{contract.id}: {len(batch.files)} new file(s), extracted {batch.extracted}, "
            f"clean {batch.loaded}, quarantined {batch.quarantined}, deduplicated {batch.deduplicated}"
            f" (staged by the loader: {batch.staged})"
        )
        # A source with nothing delivered (no folder yet, or no new file) stages zero rows and
        # says so; it is a quiet night, not an error (the gate's freshness rule judges staleness).
        note = (
            f"no new files under {contract.source}/{contract.entity}/: zero rows staged"
            if not batch.files and not extraction
            else ""
        )
        if note:
            context.log.warning(f"{contract.id}: {note}")
        discovery = discovery_metadata(batch, landing)
        if batch.refused:
            context.log.warning(
                f"{contract.id}: refused {len(batch.refused)} path(s), not read: "
                + ", ".join(f"{r['path']} ({r['kind']})" for r in discovery["refused_paths"].data)
            )
        return dg.MaterializeResult(
            metadata={
                "batch_id": batch.batch_id or "(no new files)",
                "files": len(batch.files),
                "extracted": batch.extracted,
                "clean_rows": batch.loaded,
                # the rows of this batch's __clean table, the table the raw step publishes
                "dagster/row_count": dg.MetadataValue.int(batch.loaded),
                "quarantined": batch.quarantined,
                "deduplicated": batch.deduplicated,
                "quarantined_by_rule": dg.MetadataValue.json(batch.quarantined_by_rule),
                "warnings_by_rule": dg.MetadataValue.json(batch.warnings_by_rule),
                "deduplicated_already_published": batch.deduplicated_published,
                "staged_by_loader": batch.staged,
                "deduplicated_by_kind": dg.MetadataValue.json(
                    {
                        "older_version_in_batch": batch.deduplicated_in_batch,
                        "already_in_raw": batch.deduplicated_in_raw,
                        "already_in_quarantine": batch.deduplicated_in_quarantine,
                    }
                ),
                "mode": "live" if extraction else "files",
                **({"note": note} if note else {}),
                **discovery,
                "quality_report": dg.MetadataValue.path(str(report)),
                **({"extraction": dg.MetadataValue.json(extraction)} if extraction else {}),
            }
        )

    @layer_asset(
        "raw",
        "table",
        f"raw.{contract.id}",
        key=raw_key,
        deps=[staged_key],
        description=(
            f"Raw table raw.{contract.id}: append-only published rows of {contract.source}/{contract.entity} "
            f"(one row per record version, with _batch_id and _loaded_at). Contract: {contract_file}."
        ),
    )
    def _raw(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        with warehouse.connection() as con:
            batch = load_staged(con, contract, context.run_id)
            if batch is None:
                raise dg.Failure(f"{contract.id}: nothing staged in run {context.run_id}")
            published = publish_batch(
                con, contract, batch, context.run_id, Path(warehouse.landing_dir)
            )
            # a header that was a line of data leaves no values as names (ingestion_audit)
            mask_column_names(contract, batch)
            total = con.execute(f"select count(*) from raw.{contract.id}").fetchone()[0]
        return dg.MaterializeResult(
            metadata={
                "published": published,
                "batch_id": batch.batch_id or "(no new files)",
                "rows_loaded": batch.loaded if published else 0,
                "rows_quarantined": batch.quarantined if published else 0,
                "rows_deduplicated": batch.deduplicated if published else 0,
                "dagster/row_count": dg.MetadataValue.int(total),
                "ingestion_audit": dg.MetadataValue.json(
                    json.loads(batch.to_json())
                    | {
                        "masked_samples": len(batch.masked_samples),
                        # the rows themselves are in the report, linked below
                        "rule_samples": {k: len(v) for k, v in batch.rule_samples.items()},
                    }
                ),
                "quality_report": dg.MetadataValue.path(
                    str(report_path(contract, batch.as_of, context.run_id))
                ),
            }
        )

    return [_staged, _raw]


def build_source_defs(source: str | None = None) -> dg.Definitions:
    """Staged and raw assets for every contract under data_contracts/sources/ (of `source` only
    when given); the gates live in defs/quality."""
    assets: list[dg.AssetsDefinition] = []
    for contract in all_source_contracts():
        if source is None or contract.source == source:
            assets += _entity_assets(contract)
    return dg.Definitions(assets=assets)
