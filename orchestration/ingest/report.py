"""The data-quality report: one self-contained HTML page per run and source entity.

Written to `<reports_dir>/<as_of>/<run_id>/<source>__<entity>.html` (paths.reports_dir:
`C360_REPORTS_DIR`, default `$C360_HOME/reports`) from what the stage step and the gate already
computed (the StagedBatch, the GateOutcome, the GX SuiteOutcome): no table is rescanned. The
staged asset writes it first (gates "pending"); the blocking `meets_contract` check rewrites it
with every gate's verdict, so it exists for a blocked batch too — when it is needed most. Each
run folder also gets an `index.html` listing its entity pages.

Why one page per entity and not one per run: every entity is staged and gated in its own step,
and a failing blocking check skips the downstream steps of the same run, so a run-level step that
gathered all entities would not run exactly on the nights someone needs the report. The index is
rebuilt by each entity write instead (steps run one at a time: in-process executor, duckdb pool).

Personal data: sample rows arrive masked by the stage step (masking.py, driven by the contract's
PII classification); the report masks them again by allow-list as a last line before HTML
(masking.mask_row: a PII column keeps a hint only of a clean e-mail, phone or name; a non-PII
value shows only when plausible for its column; unknown columns and every value of a ragged row
are masked), leaving values already in the masked form as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from orchestration.contracts.gx_suite import SuiteOutcome
from orchestration.contracts.masking import mask_row
from orchestration.contracts.model import Contract
from orchestration.ingest.gate import GATE_RULES, GateOutcome
from orchestration.ingest.landing import INVALID_JSON_RULE
from orchestration.ingest.wap import StagedBatch, future_rule_id
from orchestration.paths import reports_dir

TEMPLATE = "report.html.j2"
INDEX_TEMPLATE = "index.html.j2"
# Rule ids the loader quarantines with, outside the contract's rules.
_STAGE_RULES = {
    INVALID_JSON_RULE: "the line is not valid JSON (truncated or malformed); its quarantine "
    "reason names file:line",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,  # every value is data from a source file: never markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def report_path(contract: Contract, as_of: str, run_id: str, root: Path | None = None) -> Path:
    """Where the report of `contract`'s batch in run `run_id` lives (one file per run x entity)."""
    return (root or reports_dir()) / as_of / run_id / f"{contract.id}.html"


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ", ".join(str(_cell(v)) for v in value)
    return value


def masked_rows(contract: Contract, rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    """Sample rows as (columns, rows of cells) masked by allow-list (masking.mask_row: PII by
    its kind, implausible values, unknown columns, every value of a ragged row); one output row
    per input row."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    masked = [mask_row(contract, row) for row in rows]
    cells = [[_cell(row.get(c)) for c in columns] for row in masked]
    return columns, cells


def _rules(contract: Contract, batch: StagedBatch) -> list[dict]:
    """Each contract row rule (and the future-timestamp rules) with its count and verdict."""
    out = []
    for r in contract.rules:
        counts = batch.quarantined_by_rule if r.severity == "error" else batch.warnings_by_rule
        n = counts.get(r.rule_id, 0)
        verdict = "pass" if not n else ("quarantined" if r.severity == "error" else "warned")
        if r.nullify and n:
            verdict = "nulled"
        out.append(
            {
                "rule_id": r.rule_id,
                "column": r.column,
                "kind": r.kind,
                "severity": r.severity,
                "action": r.action,
                "description": r.description,
                "count": n,
                # values nulled in rows that landed (the count above is every row breaking it)
                "nulled": batch.nulled_by_rule.get(r.rule_id, 0) if r.nullify else None,
                "verdict": verdict,
            }
        )
    # Rules the stage step adds to the contract's: future timestamps (always listed) and any
    # other id it quarantined with (the loader's unreadable lines), so every count has a row.
    future = {
        future_rule_id(c): "timestamp after the end of the as_of day + "
        f"{contract.future_tolerance_hours:g} h (futureToleranceHours)"
        for c in contract.future_checked_columns
    }
    listed = {r["rule_id"] for r in out}
    extra = list(future) + sorted(set(batch.quarantined_by_rule) - listed - set(future))
    for rule_id in extra:
        n = batch.quarantined_by_rule.get(rule_id, 0)
        out.append(
            {
                "rule_id": rule_id,
                "column": rule_id.rsplit(".", 1)[0],
                "kind": rule_id.rsplit(".", 1)[-1],
                "severity": "error",
                "action": "quarantine",
                "description": future.get(rule_id)
                or _STAGE_RULES.get(rule_id, "quarantined by the stage step"),
                "count": n,
                "nulled": None,
                "verdict": "quarantined" if n else "pass",
            }
        )
    return out


def _switched_off(contract: Contract) -> dict[str, str]:
    """Gates that cannot fire for this contract, with why (a threshold set to null, a policy)."""
    off = {}
    if contract.duplicate_policy != "block":
        off["duplicates.block_policy"] = f"duplicatePolicy is {contract.duplicate_policy}"
    if contract.duplicate_policy != "keep_latest" or contract.max_duplicate_share is None:
        off["duplicates.max_share"] = "maxDuplicateShare off (or policy block)"
    if contract.max_future_share is None or not contract.future_checked_columns:
        off["timestamps.future"] = "maxFutureShare off (or no checked timestamp column)"
    if contract.max_volume_drop is None:
        off["volume.drop"] = "maxVolumeDrop is null"
    if contract.max_stale_days is None:
        off["freshness.stale"] = "maxStaleDays is null"
    return off


def _gates(contract: Contract, gate: GateOutcome | None) -> list[dict]:
    """Every batch gate with its verdict (pass / fail / off / pending), messages and samples."""
    off = _switched_off(contract)
    out = []
    for rule, blocks_when in GATE_RULES.items():
        failures = [d for d in gate.details if d.rule == rule] if gate else []
        family = rule.split(".", 1)[0]
        notes = [n for n in gate.notes if n.startswith(family + ":")] if gate else []
        if gate is None:
            verdict = "pending"
        elif failures:
            verdict = "fail"
        elif rule in off:
            verdict, notes = "off", [off[rule]]
        else:
            verdict = "pass"
        out.append(
            {
                "rule": rule,
                "blocks_when": blocks_when,
                "verdict": verdict,
                "notes": notes,
                "failures": [
                    {
                        "column": d.column,
                        "file": d.file,
                        "message": d.message,
                        "samples": masked_rows(contract, d.samples),
                    }
                    for d in failures
                ],
            }
        )
    return out


def _gx(suite: SuiteOutcome | None) -> dict:
    if suite is None:
        return {"status": "not run yet (the gate has not judged this batch)", "failed": []}
    if not suite.evaluated:
        return {"status": "not run: the clean batch is empty", "failed": []}
    failed = list(suite.failed_expectations)
    return {
        "status": "passed" if suite.success else "failed",
        "evaluated": suite.evaluated,
        "passed": suite.evaluated - len(failed),
        "failed": failed,
    }


def _write_atomic(path: Path, text: str) -> None:
    """Replace `path` in one step: the UI never serves a half-written page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _write_index(run_dir: Path) -> None:
    entries = []
    for summary in sorted(run_dir.glob("*.summary.json")):
        entries.append(json.loads(summary.read_text()))
    _write_atomic(run_dir / "index.html", _env.get_template(INDEX_TEMPLATE).render(entries=entries))


@dataclass(frozen=True)
class BatchReport:
    """The quality page of one entity's batch in one run (grain: run x entity).

    `gate`/`suite` None: written before the gate (gates shown as pending); the gate rewrites it."""

    contract: Contract
    batch: StagedBatch
    run_id: str
    gate: GateOutcome | None = None
    suite: SuiteOutcome | None = None

    def context(self) -> dict:
        """Everything the page shows, as plain values, PII masked."""
        contract, batch, run_id, gate = self.contract, self.batch, self.run_id, self.gate
        verdict = "awaiting gate" if gate is None else "passed" if gate.passed else "blocked"
        accounted = batch.loaded + batch.quarantined + batch.deduplicated
        samples = batch.rule_samples or (
            {"(first rows)": batch.masked_samples} if batch.quarantined else {}
        )
        return {
            "contract_id": contract.id,
            "source": contract.source,
            "entity": contract.entity,
            "contract_file": f"data_contracts/sources/{contract.id}.odcs.yaml",
            "as_of": batch.as_of,
            "run_id": run_id,
            "batch_id": batch.batch_id or "(no new files)",
            "mode": "live" if batch.extraction else "files",
            "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "verdict": verdict,
            "failures": len(gate.details) if gate else 0,
            "accounting": {
                "files": len(batch.files),
                "extracted": batch.extracted,
                "staged": batch.staged,
                "loaded": batch.loaded,
                "quarantined": batch.quarantined,
                "deduplicated": batch.deduplicated,
                "deduplicated_in_batch": batch.deduplicated_in_batch,
                "deduplicated_in_raw": batch.deduplicated_in_raw,
                "deduplicated_in_quarantine": batch.deduplicated_in_quarantine,
                "warnings": batch.warnings,
                "nulled": batch.nulled,
                "accounted": accounted,
                "balanced": batch.extracted == accounted,
                "quarantine_share": f"{batch.quarantine_share:.2%}",
                "max_quarantine_share": f"{contract.max_quarantine_share:.2%}",
            },
            "files": [
                {"path": p, "counted": n, "staged": batch.staged_rows_by_file.get(p, 0)}
                for p, n in batch.files_rows.items()
            ],
            "rules": _rules(contract, batch),
            "gates": _gates(contract, gate),
            "gx": _gx(self.suite),
            "samples": {
                rule: masked_rows(contract, rows) for rule, rows in sorted(samples.items())
            },
            "nulled_samples": {
                rule: masked_rows(contract, rows)
                for rule, rows in sorted(batch.nulled_samples.items())
            },
            "pii_columns": list(contract.pii_columns),
        }

    def write(self, root: Path | None = None) -> Path:
        """Render and write the page (and the run's index); returns the page's path."""
        ctx = self.context()
        path = report_path(self.contract, self.batch.as_of, self.run_id, root)
        _write_atomic(path, _env.get_template(TEMPLATE).render(**ctx))
        # Counts only (no sample values): what the run's index page lists.
        summary = {
            k: ctx[k] for k in ("contract_id", "as_of", "run_id", "batch_id", "verdict", "failures")
        } | {"page": path.name, **{k: ctx["accounting"][k] for k in ("extracted", "quarantined")}}
        _write_atomic(
            path.with_name(f"{self.contract.id}.summary.json"), json.dumps(summary, indent=1)
        )
        _write_index(path.parent)
        return path
