"""Write-audit-publish for one source entity.

stage  → the new landing files land in `staging.batch__<contract>` (text, tagged with _batch_id),
         are split by the contract's rules (quarantine SQL) and deduplicated by its policy;
         rows already published unchanged (in raw, or in quarantine for bad rows) are dropped too,
         counted as deduplicated: a re-read source range (live mode's lookback) publishes once;
audit  → a blocking check reads the staged outcome (Dagster, see defs/quality);
publish→ one transaction appends clean rows to raw, bad rows to quarantine, the files to the
         cursor (`audit.ingestion_files`) and the `audit.ingestion_audit` row. A blocked batch is
         never published; once its files are fixed, the new batch lands exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from orchestration.contracts.masking import mask_row
from orchestration.contracts.model import Contract
from orchestration.contracts.rules_sql import (
    failed_rules_sql,
    quote_ident,
    reasons_by_rule,
    typed_select_sql,
)
from orchestration.ingest.landing import LIVE_PREFIX, LandingFile, discover, read_into

_AUDIT_DDL = """
create table if not exists audit.ingestion_files (
    contract_id varchar, path varchar, sha256 varchar, size_bytes bigint,
    batch_id varchar, as_of date, published_at timestamp
);
create table if not exists audit.ingestion_audit (
    batch_id varchar primary key, contract_id varchar, as_of date, run_id varchar,
    files integer, extracted bigint, loaded bigint, quarantined bigint, deduplicated bigint,
    warnings bigint, published_at timestamp
);
create table if not exists audit.ingestion_batches (
    batch_id varchar, contract_id varchar, as_of date, run_id varchar, status varchar,
    outcome json, staged_at timestamp
);
"""


@dataclass
class StagedBatch:
    """What one stage step found: the counts the gate and the publish step use."""

    contract_id: str
    batch_id: str | None
    as_of: str
    files: list[str] = field(default_factory=list)
    extracted: int = 0
    quarantined: int = 0
    deduplicated: int = 0
    loaded: int = 0
    warnings: int = 0
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    warnings_by_rule: dict[str, int] = field(default_factory=dict)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    masked_samples: list[dict] = field(default_factory=list)
    deduplicated_published: int = 0  # of `deduplicated`: rows already in raw / quarantine
    extraction: dict = field(default_factory=dict)  # live mode: cursor, range, rows read

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.extracted if self.extracted else 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)


def batch_table(contract: Contract) -> str:
    return f"staging.batch__{contract.id}"


def ensure_tables(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Raw and quarantine tables exist (empty) even before the first batch, so dbt can build."""
    con.execute(_AUDIT_DDL)
    typed = ", ".join(f"{quote_ident(f.name)} {f.warehouse_type}" for f in contract.fields)
    con.execute(
        f"create table if not exists raw.{contract.id} ({typed}, "
        "_batch_id varchar, _loaded_at timestamp, _source_file varchar)"
    )
    text = ", ".join(f"{quote_ident(f.name)} varchar" for f in contract.fields)
    con.execute(
        f"create table if not exists quarantine.{contract.id} (_rule_id varchar, _reason varchar, "
        f"_failed_rules varchar[], {text}, _batch_id varchar, _source_file varchar, "
        "_source_row bigint, as_of date)"
    )


def _batch_id(contract: Contract, files: list[LandingFile]) -> str:
    h = hashlib.sha256(contract.id.encode())
    for f in files:
        h.update(f.sha256.encode())
    return h.hexdigest()[:16]


def _published_match_sql(contract: Contract, alias: str, table: str, key: str) -> str:
    """EXISTS: a row of `table` equal to row `alias` in every contract column (nulls equal)."""
    same = " and ".join(
        f"p.{quote_ident(c)} is not distinct from {alias}.{quote_ident(c)}"
        for c in contract.column_names
    )
    return f"exists (select 1 from {table} p where {same}) as {key}"


def _unpublished(con: duckdb.DuckDBPyConnection, contract: Contract, files: list[LandingFile]):
    done = {
        (p, s)
        for p, s in con.execute(
            "select path, sha256 from audit.ingestion_files where contract_id = ?", [contract.id]
        ).fetchall()
    }
    return [f for f in files if (str(f.path), f.sha256) not in done]


def stage_batch(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    landing_dir: Path,
    as_of: dt.date,
    run_id: str,
    sample_size: int = 5,
    extraction: dict | None = None,
) -> StagedBatch:
    """Land new files for `contract` in its staging tables and measure them against the contract."""
    ensure_tables(con, contract)
    files = _unpublished(con, contract, discover(landing_dir, contract, as_of))
    batch = StagedBatch(contract.id, None, as_of.isoformat(), [str(f.path) for f in files])
    batch.extraction = dict(extraction or {})
    bt = batch_table(contract)
    text_cols = ", ".join(f"{quote_ident(c)} varchar" for c in contract.column_names)
    con.execute(
        f"create or replace table {bt} ({text_cols}, _source_file varchar, _source_row bigint)"
    )
    if files:
        batch.batch_id = _batch_id(contract, files)
        outcome = read_into(con, bt, files, contract)
        batch.missing_columns, batch.extra_columns = outcome.missing_columns, outcome.extra_columns
    # Verdicts: each row with the error rules it breaks (first one is the reason) and warnings;
    # a bad row already in quarantine with the same values is not quarantined again.
    con.execute(
        f"create or replace table {bt}__verdicts as select *, "
        f"{failed_rules_sql(contract, 'error')} as _failed_rules, "
        f"{failed_rules_sql(contract, 'warning')} as _warned_rules, "
        f"{_published_match_sql(contract, 'b', f'quarantine.{contract.id}', '_in_quarantine')} "
        f"from {bt} b"
    )
    batch.extracted = con.execute(f"select count(*) from {bt}").fetchone()[0]
    for kind, target, new_only in (
        ("_failed_rules", batch.quarantined_by_rule, "where not _in_quarantine"),
        ("_warned_rules", batch.warnings_by_rule, ""),
    ):
        for rule_id, n in con.execute(
            f"select r, count(*) from (select unnest({kind}) as r from {bt}__verdicts "
            f"{new_only}) group by r order by r"
        ).fetchall():
            target[rule_id] = n
    batch.quarantined = con.execute(
        f"select count(*) from {bt}__verdicts where len(_failed_rules) > 0 and not _in_quarantine"
    ).fetchone()[0]
    batch.warnings = con.execute(
        f"select count(*) from {bt}__verdicts where len(_warned_rules) > 0"
    ).fetchone()[0]
    # Duplicate policy keep_latest: newest version per primary key by the ordering column;
    # ties broken by file then row order so reruns pick the same survivor.
    pk = ", ".join(quote_ident(c) for c in contract.primary_key)
    order = quote_ident(contract.ordering_column)
    con.execute(
        f"create or replace table {bt}__latest as select {typed_select_sql(contract)}, "
        f"_source_file from (select *, row_number() over (partition by {pk} order by "
        f"try_cast({order} as timestamptz) desc nulls last, {order} desc nulls last, "
        f"_source_file desc, _source_row desc) as _rn from {bt}__verdicts "
        "where len(_failed_rules) = 0) where _rn = 1"
    )
    # A version already in raw (same values in every contract column) is not published twice.
    in_raw = _published_match_sql(contract, "l", f"raw.{contract.id}", "_in_raw")
    con.execute(
        f"create or replace table {bt}__clean as select * exclude (_in_raw) from "
        f"(select l.*, {in_raw} from {bt}__latest l) where not _in_raw"
    )
    latest = con.execute(f"select count(*) from {bt}__latest").fetchone()[0]
    con.execute(f"drop table {bt}__latest")
    batch.loaded = con.execute(f"select count(*) from {bt}__clean").fetchone()[0]
    batch.deduplicated = batch.extracted - batch.quarantined - batch.loaded
    batch.deduplicated_published = (latest - batch.loaded) + con.execute(
        f"select count(*) from {bt}__verdicts where len(_failed_rules) > 0 and _in_quarantine"
    ).fetchone()[0]
    cur = con.execute(
        f"select * exclude (_warned_rules, _in_quarantine) from {bt}__verdicts "
        "where len(_failed_rules) > 0 and not _in_quarantine "
        f"order by _source_file, _source_row limit {int(sample_size)}"
    )
    names = [d[0] for d in cur.description]
    batch.masked_samples = [
        mask_row(contract, dict(zip(names, r, strict=True))) for r in cur.fetchall()
    ]
    con.execute(
        "insert into audit.ingestion_batches values (?, ?, ?, ?, 'staged', ?, now())",
        [batch.batch_id, contract.id, as_of, run_id, batch.to_json()],
    )
    return batch


def publish_batch(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    batch: StagedBatch,
    run_id: str,
    landing_dir: Path,
) -> bool:
    """Append the staged batch to raw + quarantine + audit in ONE transaction. False if nothing new."""
    if batch.batch_id is None:
        return False
    if _nothing_new_from_live(batch):
        # A live re-read holding only rows already published: publishing it would add an empty
        # batch on every rerun. Its file goes; the cursor (what raw holds) stays where it is.
        for path in batch.files:
            Path(path).unlink(missing_ok=True)
        con.execute(
            "update audit.ingestion_batches set status = 'nothing_new' "
            "where batch_id = ? and status = 'staged'",
            [batch.batch_id],
        )
        return False
    already = con.execute(
        "select count(*) from audit.ingestion_audit where batch_id = ?", [batch.batch_id]
    ).fetchone()[0]
    if already:
        return False
    bt = batch_table(contract)
    reasons = reasons_by_rule(contract)
    reason_case = " ".join(
        f"when '{rid}' then '{text.replace(chr(39), chr(39) * 2)}'" for rid, text in reasons.items()
    )
    cols = ", ".join(quote_ident(c) for c in contract.column_names)
    files = [
        f
        for f in discover(landing_dir, contract, dt.date.fromisoformat(batch.as_of))
        if str(f.path) in batch.files
    ]
    con.execute("begin transaction")
    try:
        con.execute(
            f"insert into raw.{contract.id} select {cols}, ?, now(), _source_file from {bt}__clean",
            [batch.batch_id],
        )
        con.execute(
            f"insert into quarantine.{contract.id} select _failed_rules[1], "
            f"case _failed_rules[1] {reason_case} end, _failed_rules, {cols}, ?, _source_file, "
            f"_source_row, ? from {bt}__verdicts "
            "where len(_failed_rules) > 0 and not _in_quarantine",
            [batch.batch_id, batch.as_of],
        )
        for f in files:
            con.execute(
                "insert into audit.ingestion_files values (?, ?, ?, ?, ?, ?, now())",
                [contract.id, str(f.path), f.sha256, f.size, batch.batch_id, batch.as_of],
            )
        con.execute(
            "insert into audit.ingestion_audit values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [
                batch.batch_id,
                contract.id,
                batch.as_of,
                run_id,
                len(files),
                batch.extracted,
                batch.loaded,
                batch.quarantined,
                batch.deduplicated,
                batch.warnings,
            ],
        )
        con.execute(
            "update audit.ingestion_batches set status = 'published' where batch_id = ?",
            [batch.batch_id],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return True


def _nothing_new_from_live(batch: StagedBatch) -> bool:
    return (
        batch.loaded == 0
        and batch.quarantined == 0
        and bool(batch.files)
        and all(Path(f).name.startswith(LIVE_PREFIX) for f in batch.files)
    )


def load_staged(
    con: duckdb.DuckDBPyConnection, contract: Contract, run_id: str
) -> StagedBatch | None:
    """The outcome staged for `contract` in run `run_id` (what the gate judges)."""
    row = con.execute(
        "select outcome from audit.ingestion_batches where contract_id = ? and run_id = ? "
        "order by staged_at desc limit 1",
        [contract.id, run_id],
    ).fetchone()
    if not row:
        return None
    return StagedBatch(**json.loads(row[0]))
