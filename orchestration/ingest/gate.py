"""The batch gate: decide whether a staged batch may be published, with evidence.

Every blocking reason is a `GateFailure` naming its gate rule, the column(s) and masked sample
rows (docs/data-quality.md, "Batch gates"):

| rule | blocks when |
| --- | --- |
| `schema.missing_column` | a file lacks contract columns (and has no unknown column) |
| `schema.renamed_column` | a file lacks contract columns AND has columns the contract does not know |
| `schema.retyped_column` | a column's physical type (JSON/Parquet) does not fit its logicalType, or most of its values in a file break its type rule |
| `quarantine.max_share` | quarantined rows above `maxQuarantineShare` |
| `duplicates.block_policy` / `duplicates.max_share` | any duplicate key under `block`; older versions above `maxDuplicateShare` under `keep_latest` |
| `timestamps.future` | rows with a timestamp after the as_of day + `futureToleranceHours` above `maxFutureShare` (they are quarantined either way) |
| `volume.drop` | this as_of's rows < (1 - `maxVolumeDrop`) x median of the trailing earlier as_of dates |
| `freshness.stale` | the newest ordering timestamp (batch or raw) is older than `maxStaleDays` at the end of as_of |
| `gx.expectations` | a GX batch expectation fails |
| `accounting.rows` | records counted in the files != loaded + quarantined + deduplicated, or per file != staged |

Passing gates that could not judge (no history, a quiet day, live mode) leave a note.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field

from orchestration.contracts.gx_suite import SuiteOutcome
from orchestration.contracts.masking import clean_email, clean_phone, mask_value
from orchestration.contracts.model import Contract
from orchestration.ingest.wap import StagedBatch

# Every gate rule above with when it blocks, in the order evaluate_gate runs them (the data-quality
# report lists each one with its verdict, passing gates included).
GATE_RULES: dict[str, str] = {
    "schema.missing_column": "a file lacks contract columns (and has no unknown column)",
    "schema.renamed_column": "a file lacks contract columns and has columns the contract does "
    "not know",
    "schema.retyped_column": "a column's physical type does not fit its logicalType, or most of "
    "its values in a file break its type rule",
    "quarantine.max_share": "quarantined rows above maxQuarantineShare",
    "duplicates.block_policy": "any duplicate key under duplicatePolicy: block",
    "duplicates.max_share": "older versions of a key above maxDuplicateShare (keep_latest)",
    "timestamps.future": "rows with a timestamp after the as_of day + futureToleranceHours above "
    "maxFutureShare",
    "volume.drop": "this as_of's rows below (1 - maxVolumeDrop) x the trailing median",
    "freshness.stale": "the newest ordering timestamp is older than maxStaleDays",
    "gx.expectations": "a GX batch expectation fails",
    "accounting.rows": "records counted in the files != loaded + quarantined + deduplicated, or "
    "per file != staged",
}


@dataclass(frozen=True)
class GateFailure:
    rule: str
    column: str  # the column(s) concerned, comma separated; "(batch)" for batch-level counts
    message: str
    samples: list[dict] = field(default_factory=list)  # masked rows (PII never leaves)
    file: str | None = None


@dataclass
class GateOutcome:
    passed: bool
    failures: list[str] = field(default_factory=list)  # the messages, one per failure
    details: list[GateFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def details_json(self) -> list[dict]:
        return [{k: v for k, v in asdict(d).items() if k != "samples"} for d in self.details]


# A column name a file gave that the contract does not know is shown as it is only when it is a
# plausible identifier. A file whose first line is data (no header) has values for names: a
# name, an e-mail, a phone, a birth date would otherwise leave in the schema-drift message, the
# failure's columns, its sample rows' keys and the `extra_columns` check metadata.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]{0,63}")


def _is_value(name: str) -> bool:
    """The name is surely a value, never a header: an e-mail, a phone, or it opens with a digit
    (a date, an amount, a number)."""
    text = name.strip()
    return text[:1].isdigit() or clean_email(text) is not None or clean_phone(text) is not None


def shown_column_names(contract: Contract, missing: list[str], extra: list[str]) -> dict[str, str]:
    """How each unknown column name of one file (`extra`; `missing`: the contract columns the
    file lacks) is shown: as it is when it is a plausible identifier (^[A-Za-z_][A-Za-z0-9_ ]
    {0,63}$), else masked (masking.mask_value: a hint of a clean e-mail, phone or name, else
    '***'). When the file's first line looks like data (it holds no contract column, or one of
    its names is surely a value), every unknown name of the file is masked: a first or family
    name is an identifier too. Masked names are kept apart by '#2', '#3', ..."""
    present = len(contract.column_names) - len(missing)
    data_line = present == 0 or any(_is_value(n) for n in extra)
    shown: dict[str, str] = {}
    used: set[str] = set(contract.column_names)
    for name in extra:
        if not data_line and _IDENTIFIER.fullmatch(name):
            label = name
        else:
            base = mask_value(name, "auto") or "***"
            label, n = base, 1
            while label in used:
                n += 1
                label = f"{base}#{n}"
        used.add(label)
        shown[name] = label
    return shown


def mask_column_names(contract: Contract, batch: StagedBatch) -> None:
    """Replace the batch's unknown column names (`extra_columns`) and the keys of its schema
    sample rows by their shown form (shown_column_names): from the gate on, the check metadata,
    its description, the log and the report show only those. The names serve nothing else."""
    for path, extra in list(batch.extra_columns.items()):
        shown = shown_column_names(contract, batch.missing_columns.get(path, []), extra)
        batch.extra_columns[path] = [shown[n] for n in extra]
        key = f"schema:{path}"
        if key in batch.samples:
            batch.samples[key] = [
                {shown.get(k, k): v for k, v in row.items()} for row in batch.samples[key]
            ]


def _pairs(missing: list[str], extra: list[str]) -> str:
    guesses = []
    for col in missing:
        close = difflib.get_close_matches(col, extra, n=1, cutoff=0.5)
        if close:
            guesses.append(f"{col} -> {close[0]}")
    return f" (likely {', '.join(guesses)})" if guesses else ""


def _schema(contract: Contract, batch: StagedBatch, out: list[GateFailure]) -> None:
    for path, cols in batch.missing_columns.items():
        extra = batch.extra_columns.get(path, [])
        samples = batch.samples.get(f"schema:{path}", [])
        if extra:
            out.append(
                GateFailure(
                    "schema.renamed_column",
                    ", ".join(cols + extra),
                    f"schema drift (renamed column?): {path} lacks contract column(s) "
                    f"{', '.join(cols)} and has unknown column(s) {', '.join(extra)}"
                    + _pairs(cols, extra)
                    + (
                        "; names that look like values are masked (is the first line data, "
                        "not a header?)"
                        if any("***" in e for e in extra)
                        else ""
                    ),
                    samples,
                    path,
                )
            )
        else:
            out.append(
                GateFailure(
                    "schema.missing_column",
                    ", ".join(cols),
                    f"schema drift (missing column): {path} lacks contract column(s) "
                    f"{', '.join(cols)}",
                    samples,
                    path,
                )
            )
    for path, cols in batch.retyped_columns.items():
        for col, info in cols.items():
            how = (
                f"values of type {', '.join(info['found'])} in {info['rows']} row(s)"
                if info["rule"] == "physical_type"
                else info["found"][0]
            )
            out.append(
                GateFailure(
                    "schema.retyped_column",
                    col,
                    f"schema drift (retyped column): {path} column {col} is not a "
                    f"{contract.field(col).logical_type}: {how}",
                    batch.samples.get(f"retyped:{path}:{col}", []),
                    path,
                )
            )


def _duplicates(contract: Contract, batch: StagedBatch, out: list[GateFailure]) -> None:
    n, pk = batch.deduplicated_in_batch, ", ".join(contract.primary_key)
    samples = batch.samples.get("duplicates", [])
    if contract.duplicate_policy == "block" and n:
        out.append(
            GateFailure(
                "duplicates.block_policy",
                pk,
                f"duplicates: {n} duplicate primary keys ({pk}) under a 'block' policy",
                samples,
            )
        )
    elif (
        contract.duplicate_policy == "keep_latest"
        and contract.max_duplicate_share is not None
        and batch.duplicate_share > contract.max_duplicate_share
    ):
        out.append(
            GateFailure(
                "duplicates.max_share",
                pk,
                f"duplicates: {batch.duplicate_share:.2%} of rows are older versions of a key "
                f"({pk}) in this batch ({n} of {batch.extracted}), above maxDuplicateShare "
                f"{contract.max_duplicate_share:.2%}",
                samples,
            )
        )


def _future(contract: Contract, batch: StagedBatch, out: list[GateFailure]) -> None:
    if not batch.future_rows or contract.max_future_share is None:
        return
    if batch.future_share <= contract.max_future_share:
        return
    for col, n in batch.future_by_column.items():
        out.append(
            GateFailure(
                "timestamps.future",
                col,
                f"future timestamps: {n} row(s) have {col} after {batch.future_cutoff} (end of "
                f"as_of {batch.as_of} + {contract.future_tolerance_hours:g} h); "
                f"{batch.future_share:.2%} of the batch, above maxFutureShare "
                f"{contract.max_future_share:.2%}",
                batch.samples.get(f"future:{col}", []),
            )
        )


def _volume(contract: Contract, batch: StagedBatch, out: list[GateFailure], notes: list[str]):
    v = batch.volume
    if contract.max_volume_drop is None or not v:
        return
    if v.get("live"):
        notes.append("volume: not judged in live mode (a day's change volume, not the source's)")
        return
    if not v.get("delivered"):
        notes.append("volume: nothing delivered for this as_of (a quiet day; see freshness)")
        return
    history = v.get("history") or []
    if len(history) < contract.volume_min_history:
        notes.append(
            f"volume: {len(history)} earlier as_of date(s) published, "
            f"{contract.volume_min_history} needed to judge a drop"
        )
        return
    floor = (1 - contract.max_volume_drop) * v["median"]
    if v["rows"] < floor:
        out.append(
            GateFailure(
                "volume.drop",
                "(batch)",
                f"volume drop: {v['rows']} row(s) for as_of {batch.as_of} < "
                f"{floor:g} = (1 - maxVolumeDrop {contract.max_volume_drop:g}) x median "
                f"{v['median']:g} of the {len(history)} earlier as_of date(s) "
                f"{history[-1][0]}..{history[0][0]}",
            )
        )


def _freshness(contract: Contract, batch: StagedBatch, out: list[GateFailure], notes: list[str]):
    f = batch.freshness
    if contract.max_stale_days is None or not f:
        return
    if f.get("newest") is None:
        notes.append(f"freshness: no valid {f.get('column')} yet (nothing published)")
        return
    if f["age_days"] > contract.max_stale_days:
        out.append(
            GateFailure(
                "freshness.stale",
                f["column"],
                f"stale source: the newest {f['column']} ({f['newest']}, in {f['newest_in']}) is "
                f"{f['age_days']:g} days before the end of as_of {batch.as_of}, above "
                f"maxStaleDays {contract.max_stale_days:g}",
                batch.samples.get("stale", []),
            )
        )


def _accounting(batch: StagedBatch, out: list[GateFailure]) -> None:
    for path, n in batch.files_rows.items():
        staged = batch.staged_rows_by_file.get(path, 0)
        if staged != n:
            out.append(
                GateFailure(
                    "accounting.rows",
                    "(file)",
                    f"row accounting: {path} holds {n} record(s) counted independently but the "
                    f"loader staged {staged}",
                    file=path,
                )
            )
    accounted = batch.loaded + batch.quarantined + batch.deduplicated + batch.erased
    if batch.extracted != accounted:
        out.append(
            GateFailure(
                "accounting.rows",
                "(batch)",
                f"row accounting: extracted {batch.extracted} != loaded {batch.loaded} + "
                f"quarantined {batch.quarantined} + deduplicated {batch.deduplicated} "
                f"+ erased {batch.erased} (= {accounted})",
            )
        )


def _file_notes(batch: StagedBatch, notes: list[str]) -> None:
    """What discovery refused and the copies recorded without a read: reported under accounting
    (they do not block: the rest of the batch goes on, and nothing of them was counted)."""
    for path, why in sorted(batch.refused.items()):
        notes.append(f"accounting: refused {path}: {why}; nothing of it was counted or loaded")
    for path, first in sorted(batch.same_content.items()):
        notes.append(
            f"accounting: {path} holds the same bytes (sha256) as {first}: recorded as "
            "delivered, not read again (its rows are counted once, with that file)"
        )


def evaluate_gate(contract: Contract, batch: StagedBatch, suite: SuiteOutcome) -> GateOutcome:
    """The gates' verdict on `batch`. The batch's unknown column names are masked in it first
    (mask_column_names): a header that is a line of data must not leave as names."""
    mask_column_names(contract, batch)
    out: list[GateFailure] = []
    notes: list[str] = []
    _file_notes(batch, notes)
    _schema(contract, batch, out)
    if batch.quarantine_share > contract.max_quarantine_share:
        top = sorted(batch.quarantined_by_rule.items(), key=lambda kv: -kv[1])
        out.append(
            GateFailure(
                "quarantine.max_share",
                ", ".join(sorted({r.rsplit(".", 1)[0] for r, _ in top[:3]})),
                f"quarantine share {batch.quarantine_share:.2%} exceeds "
                f"{contract.max_quarantine_share:.2%} ({batch.quarantined} of {batch.extracted} "
                f"rows; by rule {dict(top[:5])})",
                batch.masked_samples,
            )
        )
    _duplicates(contract, batch, out)
    _future(contract, batch, out)
    _volume(contract, batch, out, notes)
    _freshness(contract, batch, out, notes)
    if not suite.success:
        out.append(
            GateFailure(
                "gx.expectations",
                ", ".join(contract.primary_key),
                "GX batch expectations failed: " + ", ".join(suite.failed_expectations),
            )
        )
    _accounting(batch, out)
    return GateOutcome(not out, [d.message for d in out], out, notes)
