"""Write-audit-publish for one source entity.

stage  → the new landing files are read as text (tagged with file and row), split by the
         contract's rules (quarantine SQL) into `staging.batch__<contract>__verdicts` (rows that
         break an error rule, with the rules) and, deduplicated by its policy, the typed
         `staging.batch__<contract>__clean`;
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
import statistics
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from orchestration.contracts.masking import mask_row
from orchestration.contracts.model import Contract
from orchestration.contracts.rules_sql import (
    failed_rules_sql,
    nonnull_list_sql,
    quote_ident,
    quote_literal,
    reasons_by_rule,
    timestamp_or_null_sql,
    trim_sql,
    trimmed_column,
    trimmed_columns_sql,
    typed_select_sql,
)
from orchestration.engine import (
    Connection,
    changed_rows,
    create_temp_table,
    dialect_of,
    replace_table,
)
from orchestration.ingest.landing import (
    INVALID_JSON_RULE,
    LIVE_PREFIX,
    SAMPLE_ROWS,
    SUFFIXES,
    LandingFile,
    LandingFileError,
    ReadOutcome,
    discover_landing,
    read_into,
    records_in,
    scan_file,
    unchanged_since_scan,
)
from orchestration.privacy.tombstones import drop_tombstoned

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
create table if not exists audit.landing_file_signatures (
    contract_id varchar, path varchar, sha256 varchar, signature varchar
);
create table if not exists audit.ingestion_batches (
    batch_id varchar, contract_id varchar, as_of date, run_id varchar, status varchar,
    outcome json, staged_at timestamp
);
"""


@dataclass
class StagedBatch:
    """What one stage step found: the counts and evidence the gate and the publish step use."""

    contract_id: str
    batch_id: str | None
    as_of: str
    files: list[str] = field(default_factory=list)
    extracted: int = 0  # records in the files, counted without the loader (records_in)
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
    # Row accounting: the independent count per file, the loader's, and the three dedup kinds.
    staged: int = 0  # rows the loader put in the staging table
    files_rows: dict[str, int] = field(default_factory=dict)
    staged_rows_by_file: dict[str, int] = field(default_factory=dict)
    file_sha256: dict[str, str] = field(default_factory=dict)
    # file -> its stat signature when it was read (LandingFile.signature; absent when racy):
    # publish checks the file is unchanged by it instead of hashing the file again.
    file_signature: dict[str, list[int]] = field(default_factory=dict)
    deduplicated_in_batch: int = 0  # older versions of a key in this batch (keep_latest)
    deduplicated_in_raw: int = 0  # newest version already in raw unchanged
    deduplicated_in_quarantine: int = 0  # bad row already in quarantine unchanged
    # Batch gate evidence (the gate decides with the contract's thresholds).
    retyped_columns: dict[str, dict[str, dict]] = field(default_factory=dict)
    future_by_column: dict[str, int] = field(default_factory=dict)
    future_rows: int = 0
    future_cutoff: str | None = None
    freshness: dict = field(default_factory=dict)
    volume: dict = field(default_factory=dict)
    samples: dict[str, list[dict]] = field(default_factory=dict)  # masked, by gate finding
    # Masked quarantined rows per error rule (a few each), for the data-quality report.
    rule_samples: dict[str, list[dict]] = field(default_factory=dict)
    # Nullify rules (`onInvalid: nullify`): values nulled in rows that break no error rule (the
    # row lands without the value), per rule; rows with at least one; masked rows as read.
    nulled: int = 0
    nulled_by_rule: dict[str, int] = field(default_factory=dict)
    nulled_samples: dict[str, list[dict]] = field(default_factory=dict)
    # What discovery refused to read, by name (a file or folder -> why): a symbolic link leaving
    # the landing folder, a broken link, an invalid `dt=` folder. Not read, not counted, not
    # recorded: found again (and reported again) every night until it is fixed.
    refused: dict[str, str] = field(default_factory=dict)
    # New paths whose bytes (sha256) are a file already published for this contract, or an
    # earlier file of this batch (file -> that file): in `files` and recorded in the cursor at
    # publish, but not read again, so their rows are neither counted nor loaded a second time.
    same_content: dict[str, str] = field(default_factory=dict)
    # Rows holding an identifier of an erased person (privacy/tombstones.py): dropped as read.
    erased: int = 0

    @property
    def quarantine_share(self) -> float:
        return self.quarantined / self.extracted if self.extracted else 0.0

    @property
    def duplicate_share(self) -> float:
        return self.deduplicated_in_batch / self.extracted if self.extracted else 0.0

    @property
    def future_share(self) -> float:
        return self.future_rows / self.extracted if self.extracted else 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)


# A column is retyped by its values when more than this share of its present values in one file
# break its type rule, with at least RETYPE_MIN_VALUES present (fewer is ordinary quarantine).
RETYPE_SHARE = 0.5
RETYPE_MIN_VALUES = 20
NOT_FUTURE = "not_future"
RULE_SAMPLE_ROWS = 3  # masked quarantined rows kept per failed rule (the quality report shows them)


# The session's temp tables of stage_batch: the rows read, as text, and the same rows with their
# verdicts (see stage_batch).
_TEXT_TABLE = "_c360_batch_text"
_VERDICTS_TABLE = "_c360_batch_verdicts"


def future_rule_id(column: str) -> str:
    return f"{column}.{NOT_FUTURE}"


def batch_table(contract: Contract) -> str:
    """Name prefix of the batch's staging tables: `<prefix>__verdicts` (the rows read that break
    an error rule, as text, with their verdicts), `__ranked` (clean rows of keys seen more than
    once, ranked) and `__clean` (the typed latest versions, to be published)."""
    return f"staging.batch__{contract.id}"


def ensure_tables(con: Connection, contract: Contract) -> None:
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


def undo_unfinished_publish(con: Connection, contract: Contract) -> list[str]:
    """Remove what a publish that stopped halfway wrote (rows in raw and quarantine, files in the
    cursor, without the batch's `audit.ingestion_audit` row, which publish writes last); returns
    those batch ids. Only an engine without transactions (Spark on Parquet) can leave one: the
    batch's files then read as new and the rerun publishes them whole."""
    published = "select batch_id from audit.ingestion_audit where contract_id = ?"
    unfinished: set[str] = set()
    for table, column, where in (
        (f"raw.{contract.id}", "_batch_id", ""),
        (f"quarantine.{contract.id}", "_batch_id", ""),
        ("audit.ingestion_files", "batch_id", "contract_id = ? and "),
    ):
        params = [contract.id] * (2 if where else 1)
        unfinished |= {
            b
            for (b,) in con.execute(
                f"select distinct {column} from {table} where {where}{column} is not null "
                f"and {column} not in ({published})",
                params,
            ).fetchall()
        }
    for batch_id in sorted(unfinished):
        con.execute(f"delete from raw.{contract.id} where _batch_id = ?", [batch_id])
        con.execute(f"delete from quarantine.{contract.id} where _batch_id = ?", [batch_id])
        con.execute("delete from audit.ingestion_files where batch_id = ?", [batch_id])
    return sorted(unfinished)


def _batch_id(contract: Contract, files: list[LandingFile]) -> str:
    """Stable id of a batch: its files' paths and bytes. The paths count: a copy of a published
    file under a new name is a new batch (recorded once), not the published one again."""
    h = hashlib.sha256(contract.id.encode())
    for f in files:
        h.update(f.sha256.encode())
        h.update(b"\0" + str(f.path).encode() + b"\0")
    return h.hexdigest()[:16]


def _published_match_sql(contract: Contract, alias: str, table: str, key: str) -> str:
    """EXISTS: a row of `table` equal to row `alias` in every contract column (nulls equal)."""
    same = " and ".join(
        f"p.{quote_ident(c)} is not distinct from {alias}.{quote_ident(c)}"
        for c in contract.column_names
    )
    return f"exists (select 1 from {table} p where {same}) as {key}"


def _published_signatures(
    con: Connection, contract: Contract
) -> dict[str, tuple[tuple[int, ...], str]]:
    """path -> (stat signature, SHA-256) of the contract's files published with the bytes they
    hold at that signature (audit.landing_file_signatures joined with the cursor: a path erasure
    rewrote, or whose batch was undone, is read again)."""
    rows = con.execute(
        "select s.path, s.signature, s.sha256 from audit.landing_file_signatures as s "
        "inner join audit.ingestion_files as f on f.contract_id = s.contract_id "
        "and f.path = s.path and f.sha256 = s.sha256 where s.contract_id = ?",
        [contract.id],
    ).fetchall()
    return {p: (tuple(json.loads(sig)), sha) for p, sig, sha in rows}


def remember_signatures(con: Connection, contract: Contract, files: list[LandingFile]) -> None:
    """Record the stat signature each of `files` had when scan_file read it (none for a file
    read while it was written: it is read again next time)."""
    files = [f for f in files if f.signature is not None]
    if not files:
        return
    paths = ", ".join(quote_literal(str(f.path)) for f in files)
    con.execute(
        "delete from audit.landing_file_signatures "
        f"where contract_id = {quote_literal(contract.id)} and path in ({paths})"
    )
    con.executemany(
        "insert into audit.landing_file_signatures values (?, ?, ?, ?)",
        [[contract.id, str(f.path), f.sha256, json.dumps(list(f.signature))] for f in files],
    )


def _unpublished(
    con: Connection, contract: Contract, files: list[LandingFile]
) -> tuple[list[LandingFile], dict[str, str]]:
    """The files not yet published at their path with their bytes, and of them the ones whose
    bytes were published under another path or are an earlier file of this list (new path ->
    that path; the earliest published path, else the first in path order)."""
    done: set[tuple[str, str]] = set()
    by_sha: dict[str, str] = {}
    for p, s in con.execute(
        "select path, sha256 from audit.ingestion_files where contract_id = ? "
        "order by published_at, path",
        [contract.id],
    ).fetchall():
        done.add((p, s))
        by_sha.setdefault(s, p)
    new = [f for f in files if (str(f.path), f.sha256) not in done]
    same: dict[str, str] = {}
    for f in new:
        first = by_sha.setdefault(f.sha256, str(f.path))
        if first != str(f.path):
            same[str(f.path)] = first
    return new, same


def _masked(con, contract: Contract, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [mask_row(contract, dict(zip(names, r, strict=True))) for r in cur.fetchall()]


def _columns_except(con: Connection, relation: str, *excluded: str, prefix: str = "") -> str:
    """The select list of `relation`'s columns but `excluded`, in order (each after `prefix`,
    e.g. "r."): what DuckDB writes `* exclude (…)`, in SQL every engine reads."""
    cur = con.execute(f"select * from {relation} limit 0")
    names = [d[0] for d in cur.description]
    cur.fetchall()
    return ", ".join(prefix + quote_ident(n) for n in names if n not in excluded)


# Columns of the verdicts table that only the stage step reads (never in a sample row).
_VERDICT_FLAGS = ("_warned_rules", "_in_quarantine")


def _future_sql(contract: Contract, cutoff: dt.datetime, dialect: str) -> str:
    """List of `<column>.not_future` ids a row breaks: a valid timestamp after the cutoff.

    Reads the trimmed values of the verdicts' subquery (trimmed_columns_sql): a future-checked
    column is a timestamp, so its `.type` rule reads it and it has its trimmed column."""
    lit = quote_literal(cutoff.strftime("%Y-%m-%d %H:%M:%S+00"))
    parts = []
    for col in contract.future_checked_columns:
        assert any(r.column == col for r in contract.rules), f"{col}: no rule reads it"
        c, t = quote_ident(col), quote_ident(trimmed_column(col))
        # nested: the cast runs only on a value its type rule accepted (Postgres has no try_cast
        # and does not promise the order of `and`)
        parts.append(
            f"case when {c} is not null and {t} <> '' and not list_contains("
            f"_contract_failed, {quote_literal(col + '.type')}) then case when "
            f"{timestamp_or_null_sql(t, dialect)} > cast({lit} as timestamptz) "
            f"then {quote_literal(future_rule_id(col))} end end"
        )
    return nonnull_list_sql(parts, dialect)


def _read_text(
    con: Connection, table: str, files: list[LandingFile], contract: Contract
) -> ReadOutcome:
    """landing.read_into on any warehouse: DuckDB reads the files (CSV, JSON lines, Parquet).
    On DuckDB into `table` itself; on another engine into the same table in a scratch DuckDB,
    whose rows (text, file and row numbers) are then copied into `table`. Grain: one row per
    record read."""
    if dialect_of(con) == "duckdb":
        return read_into(con, table, files, contract)
    from orchestration.warehouse import scratch

    with scratch() as local:
        columns = con.execute(f"select * from {table} limit 0").description
        con.fetchall()
        local.execute(
            f"create temp table {table} ("
            + ", ".join(
                f"{quote_ident(d[0])} {'bigint' if d[0] == '_source_row' else 'varchar'}"
                for d in columns
            )
            + ")"
        )
        outcome = read_into(local, table, files, contract)
        rows = local.sql(f"select * from {table}").to_arrow_table()
    con.register("_c360_read_text", rows)
    try:
        con.execute(f"insert into {table} select * from _c360_read_text")
    finally:
        con.unregister("_c360_read_text")
    return outcome


def _as_of_end(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0, 0))


def stage_batch(
    con: Connection,
    contract: Contract,
    landing_dir: Path,
    as_of: dt.date,
    run_id: str,
    sample_size: int = 5,
    extraction: dict | None = None,
) -> StagedBatch:
    """Land new files for `contract` in its staging tables and measure them against the contract."""
    ensure_tables(con, contract)
    if dialect_of(con) == "spark":
        undo_unfinished_publish(con, contract)
    found = discover_landing(landing_dir, contract, as_of, _published_signatures(con, contract))
    files, same = _unpublished(con, contract, found.files)
    # published files read tonight (none recorded yet, or the recorded one stale): recorded, so
    # later nights only stat them
    to_publish = {str(f.path) for f in files}
    remember_signatures(
        con, contract, [f for f in found.files if f.scanned and str(f.path) not in to_publish]
    )
    batch = StagedBatch(contract.id, None, as_of.isoformat(), [str(f.path) for f in files])
    batch.refused, batch.same_content = found.refused, same
    # Read (and counted) only once per content: a copy is recorded at publish, never re-read.
    to_read = [f for f in files if str(f.path) not in same]
    batch.extraction = dict(extraction or {})
    bt = batch_table(contract)
    # The rows as read (text) and their verdicts are read only by this step: temp tables, in
    # memory, instead of persisted ones (a persistent, compressed write costs several times a
    # temp one). What later steps read persists: the typed clean
    # rows (__clean) and the rows that break an error rule (__verdicts, the quarantine side).
    # The persisted text table of earlier versions goes, so no stale batch is left under its name.
    text, verdicts = _TEXT_TABLE, _VERDICTS_TABLE
    dialect = dialect_of(con)
    text_cols = ", ".join(f"{quote_ident(c)} varchar" for c in contract.column_names)
    con.execute(f"drop table if exists {bt}")
    con.execute(f"drop table if exists {text}")
    con.execute(
        f"create temp table {text} ({text_cols}, _source_file varchar, "
        "_source_row bigint, _read_error varchar)"
    )
    if files:
        batch.batch_id = _batch_id(contract, files)
        batch.file_sha256 = {str(f.path): f.sha256 for f in files}
        batch.file_signature = {str(f.path): list(f.signature) for f in files if f.signature}
        # Counted before and without the loader: the independent side of row accounting.
        batch.files_rows = {str(f.path): records_in(f) for f in to_read}
        outcome = _read_text(con, text, to_read, contract)
        batch.missing_columns, batch.extra_columns = outcome.missing_columns, outcome.extra_columns
        batch.staged_rows_by_file = outcome.rows_by_file
        batch.erased = drop_tombstoned(con, contract.id, text)
        for path, rows in outcome.file_samples.items():
            batch.samples[f"schema:{path}"] = rows
        for path, cols in outcome.retyped.items():
            for col, info in cols.items():
                batch.retyped_columns.setdefault(path, {})[col] = {
                    "rule": "physical_type",
                    "found": info["types"],
                    "rows": info["rows"],
                }
                rows = ", ".join(str(int(r)) for r in info["sample_rows"]) or "null"
                batch.samples[f"retyped:{path}:{col}"] = _masked(
                    con,
                    contract,
                    f"select * from {text} where _source_file = ? and _source_row in ({rows}) "
                    "order by _source_row",
                    [path],
                )
    cutoff = _as_of_end(as_of) + dt.timedelta(hours=contract.future_tolerance_hours)
    batch.future_cutoff = cutoff.isoformat() + "Z"
    # Verdicts: each row with the error rules it breaks (first one is the reason; a timestamp
    # after the cutoff breaks `<column>.not_future`) and warnings; a bad row already in
    # quarantine with the same values is not quarantined again. A line the loader could not read
    # (`_read_error`, e.g. truncated JSON) breaks only INVALID_JSON_RULE and is never matched
    # against quarantine: its all-null columns would equal any other unreadable line.
    # Each value is trimmed once, in the innermost subquery, and every rule reads that column.
    trims = trimmed_columns_sql(contract, dialect)
    read_columns = ", ".join(
        quote_ident(c)
        for c in (*contract.column_names, "_source_file", "_source_row", "_read_error")
    )
    invalid_json = nonnull_list_sql([quote_literal(INVALID_JSON_RULE)], dialect)
    create_temp_table(
        con,
        verdicts,
        f"select {read_columns}, _warned_rules, "
        "case when _read_error is null then list_concat(_contract_failed, "
        f"{_future_sql(contract, cutoff, dialect)}) else {invalid_json} end "
        "as _failed_rules, _in_quarantine and _read_error is null as _in_quarantine "
        f"from (select *, {failed_rules_sql(contract, 'error', dialect)} "
        f"as _contract_failed, {failed_rules_sql(contract, 'warning', dialect)} "
        "as _warned_rules, "
        f"{_published_match_sql(contract, 'b', f'quarantine.{contract.id}', '_in_quarantine')} "
        f"from (select *{', ' + trims if trims else ''} from {text}) b) v",
    )
    batch.staged = con.execute(f"select count(*) from {text}").fetchone()[0]
    con.execute(f"drop table {text}")
    batch.extracted = sum(batch.files_rows.values())
    for kind, target, new_only in (
        ("_failed_rules", batch.quarantined_by_rule, "where not _in_quarantine"),
        ("_warned_rules", batch.warnings_by_rule, ""),
    ):
        for rule_id, n in con.execute(
            f"select r, count(*) from (select unnest({kind}) as r from {verdicts} "
            f"{new_only}) u group by r order by r"
        ).fetchall():
            target[rule_id] = n
    batch.quarantined = con.execute(
        f"select count(*) from {verdicts} where array_length(_failed_rules) > 0 and not _in_quarantine"
    ).fetchone()[0]
    batch.deduplicated_in_quarantine = con.execute(
        f"select count(*) from {verdicts} where array_length(_failed_rules) > 0 and _in_quarantine"
    ).fetchone()[0]
    batch.warnings = con.execute(
        f"select count(*) from {verdicts} where array_length(_warned_rules) > 0"
    ).fetchone()[0]
    _measure_nulled(con, contract, batch)
    # Duplicate policy keep_latest: newest version per primary key by the ordering column;
    # ties broken by file then row order so reruns pick the same survivor.
    # Only keys seen more than once are ranked by a window (a sort of whole rows), into the small
    # `__ranked` table; a key seen once is its own latest version — most keys of most batches,
    # found by a hash aggregate — and goes straight from the verdicts to the typed `__clean`
    # table: the clean rows are copied once, not once ranked and again typed.
    pk = ", ".join(quote_ident(c) for c in contract.primary_key)
    order = quote_ident(contract.ordering_column)
    same_key = " and ".join(
        f"d.{quote_ident(c)} is not distinct from v.{quote_ident(c)}" for c in contract.primary_key
    )
    clean = f"(select * from {verdicts} where array_length(_failed_rules) = 0)"
    # the value as it lands (trimmed, typed_select_sql) orders the versions
    ordered = timestamp_or_null_sql(trim_sql(order, dialect), dialect)
    create_temp_table(
        con, "_c360_dup_keys", f"select {pk} from {clean} c group by {pk} having count(*) > 1"
    )
    replace_table(
        con,
        f"{bt}__ranked",
        f"select *, row_number() over (partition by {pk} "
        f"order by {ordered} desc nulls last, {order} desc nulls "
        f"last, _source_file desc, _source_row desc) as _rn from {clean} v "
        f"where exists (select 1 from _c360_dup_keys d where {same_key})",
    )
    batch.deduplicated_in_batch = con.execute(
        f"select count(*) from {bt}__ranked where _rn > 1"
    ).fetchone()[0]
    if batch.deduplicated_in_batch:
        shown = _columns_except(con, f"{bt}__ranked", "_failed_rules", *_VERDICT_FLAGS, prefix="r.")
        batch.samples["duplicates"] = _masked(
            con,
            contract,
            f"with k as (select distinct {pk} from {bt}__ranked where _rn > 1 order by {pk} "
            f"limit 3) select {shown} from {bt}__ranked r join k using ({pk}) "
            f"order by {', '.join('r.' + quote_ident(c) for c in contract.primary_key)}, r._rn "
            "limit 6",
        )
    # A version already in raw (same values in every contract column) is not published twice:
    # deleted from the typed latest versions, counted by the delete's own predicate.
    typed = typed_select_sql(contract, dialect)
    replace_table(
        con,
        f"{bt}__clean",
        f"select {typed}, _source_file from {clean} v where not exists (select 1 from "
        f"_c360_dup_keys d where {same_key}) union all select {typed}, _source_file "
        f"from {bt}__ranked where _rn = 1",
    )
    con.execute("drop table _c360_dup_keys")
    in_raw = _published_match_sql(contract, "clean", f"raw.{contract.id}", "_in_raw")
    batch.deduplicated_in_raw = changed_rows(
        con, f"delete from {bt}__clean as clean where {in_raw.removesuffix(' as _in_raw')}"
    )
    batch.loaded = con.execute(f"select count(*) from {bt}__clean").fetchone()[0]
    # Each part counted by its own predicate (not as a difference): the accounting can fail.
    batch.deduplicated = (
        batch.deduplicated_in_batch + batch.deduplicated_in_raw + batch.deduplicated_in_quarantine
    )
    batch.deduplicated_published = batch.deduplicated_in_raw + batch.deduplicated_in_quarantine
    sample_columns = _columns_except(con, verdicts, *_VERDICT_FLAGS)
    batch.masked_samples = _masked(
        con,
        contract,
        f"select {sample_columns} from {verdicts} "
        "where array_length(_failed_rules) > 0 and not _in_quarantine "
        f"order by _source_file, _source_row limit {int(sample_size)}",
    )
    batch.rule_samples = _rule_samples(con, contract, RULE_SAMPLE_ROWS)
    _measure_retyped_values(con, contract, batch)
    _measure_future(con, contract, batch)
    _measure_freshness(con, contract, batch, as_of)
    _measure_volume(con, contract, batch, as_of, to_read)
    replace_table(
        con, f"{bt}__verdicts", f"select * from {verdicts} where array_length(_failed_rules) > 0"
    )
    con.execute(f"drop table {verdicts}")
    con.execute(
        "insert into audit.ingestion_batches values (?, ?, ?, ?, 'staged', ?, now())",
        [batch.batch_id, contract.id, as_of, run_id, batch.to_json()],
    )
    return batch


def _rule_samples(con, contract: Contract, per_rule: int) -> dict[str, list[dict]]:
    """The first `per_rule` newly quarantined rows of each failed rule (file, row order), masked.

    Read from the batch's own verdicts table (this batch's rows only, never raw or quarantine),
    so every rule that quarantined something shows an example, not only the first rule's."""
    verdicts = _VERDICTS_TABLE
    shown = _columns_except(con, verdicts, *_VERDICT_FLAGS)
    cur = con.execute(
        f"select _sample_rule, {shown} from (select *, row_number() "
        "over (partition by _sample_rule order by _source_file, _source_row) as _rn from ("
        f"select unnest(_failed_rules) as _sample_rule, * from {verdicts} "
        "where array_length(_failed_rules) > 0 and not _in_quarantine) u) r "
        f"where _rn <= {int(per_rule)} order by _sample_rule, _source_file, _source_row"
    )
    names = [d[0] for d in cur.description]
    out: dict[str, list[dict]] = {}
    for r in cur.fetchall():
        row = dict(zip(names, r, strict=True))
        out.setdefault(row.pop("_sample_rule"), []).append(mask_row(contract, row))
    return out


def _measure_nulled(con, contract: Contract, batch: StagedBatch) -> None:
    """Values a nullify rule nulls (typed_select_sql) in the rows that break no error rule: per
    rule, the rows holding one, and the first RULE_SAMPLE_ROWS of each rule (masked, as read)."""
    ids = [r.rule_id for r in contract.nullify_rules]
    if not ids:
        return
    verdicts = _VERDICTS_TABLE
    nulled = nonnull_list_sql(
        [
            f"case when list_contains(_warned_rules, {quote_literal(i)}) then "
            f"{quote_literal(i)} end"
            for i in ids
        ],
        dialect_of(con),
    )
    landing = (
        f"(select *, {nulled} as _nulled_rules from {verdicts} "
        "where array_length(_failed_rules) = 0) l"
    )
    for rule_id, n in con.execute(
        f"select r, count(*) from (select unnest(_nulled_rules) as r from {landing}) u "
        "group by r order by r"
    ).fetchall():
        batch.nulled_by_rule[rule_id] = n
    batch.nulled = con.execute(
        f"select count(*) from {landing} where array_length(_nulled_rules) > 0"
    ).fetchone()[0]
    if not batch.nulled:
        return
    shown = _columns_except(con, verdicts, *_VERDICT_FLAGS, "_failed_rules")
    cur = con.execute(
        f"select _sample_rule, {shown} "
        "from (select *, row_number() over (partition by _sample_rule order by _source_file, "
        f"_source_row) as _rn from (select unnest(_nulled_rules) as _sample_rule, * from "
        f"{landing} where array_length(_nulled_rules) > 0) u) r where _rn <= {RULE_SAMPLE_ROWS} "
        "order by _sample_rule, _source_file, _source_row"
    )
    names = [d[0] for d in cur.description]
    for r in cur.fetchall():
        row = dict(zip(names, r, strict=True))
        batch.nulled_samples.setdefault(row.pop("_sample_rule"), []).append(mask_row(contract, row))


def _measure_retyped_values(con, contract: Contract, batch: StagedBatch) -> None:
    """Per file and typed column: present values and those breaking the type rule (an error or,
    on an `onInvalid: nullify` field, a warning: a column whose format changed is retyped and
    blocks rather than landing with every value nulled)."""
    verdicts = _VERDICTS_TABLE
    typed = [f.name for f in contract.fields if f.logical_type != "string"]
    if not typed or not batch.files:
        return
    dialect = dialect_of(con)
    aggs = ", ".join(
        f"count(*) filter (where {quote_ident(c)} is not null and "
        f"{trim_sql(quote_ident(c), dialect)} <> ''), "
        f"count(*) filter (where list_contains(list_concat(_failed_rules, _warned_rules), "
        f"{quote_literal(c + '.type')}))"
        for c in typed
    )
    for row in con.execute(
        f"select _source_file, {aggs} from {verdicts} group by _source_file"
    ).fetchall():
        path = row[0]
        for i, col in enumerate(typed):
            present, bad = row[1 + 2 * i], row[2 + 2 * i]
            if present < RETYPE_MIN_VALUES or bad <= RETYPE_SHARE * present:
                continue
            if col in batch.retyped_columns.get(path, {}):
                continue  # already found by its physical type
            batch.retyped_columns.setdefault(path, {})[col] = {
                "rule": "type_rule",
                "found": [
                    f"{bad} of {present} present values are not a valid "
                    f"{contract.field(col).logical_type}"
                ],
                "rows": bad,
            }
            batch.samples[f"retyped:{path}:{col}"] = _masked(
                con,
                contract,
                f"select {_columns_except(con, verdicts, *_VERDICT_FLAGS)} from {verdicts} "
                "where _source_file = ? and list_contains(list_concat(_failed_rules, "
                f"_warned_rules), {quote_literal(col + '.type')}) order by _source_row "
                f"limit {SAMPLE_ROWS}",
                [path],
            )


def _measure_future(con, contract: Contract, batch: StagedBatch) -> None:
    verdicts = _VERDICTS_TABLE
    for col in contract.future_checked_columns:
        # the rule id as a literal: a parameter inside list_contains is written twice on Postgres
        has_rule = f"list_contains(_failed_rules, {quote_literal(future_rule_id(col))})"
        n = con.execute(
            f"select count(*) from {verdicts} where not _in_quarantine and {has_rule}"
        ).fetchone()[0]
        if n:
            batch.future_by_column[col] = n
            batch.samples[f"future:{col}"] = _masked(
                con,
                contract,
                f"select {_columns_except(con, verdicts, *_VERDICT_FLAGS)} from {verdicts} "
                f"where not _in_quarantine and {has_rule} "
                f"order by _source_file, _source_row limit {SAMPLE_ROWS}",
            )
    any_future = " or ".join(
        f"list_contains(_failed_rules, {quote_literal(future_rule_id(c))})"
        for c in contract.future_checked_columns
    )
    batch.future_rows = (
        con.execute(
            f"select count(*) from {verdicts} where not _in_quarantine and ({any_future})"
        ).fetchone()[0]
        if any_future
        else 0
    )


def _measure_freshness(con, contract: Contract, batch: StagedBatch, as_of: dt.date) -> None:
    """Newest valid, not-future ordering timestamp in this batch and in raw, its age at as_of end."""
    col = contract.ordering_column
    if contract.field(col).logical_type not in ("timestamp", "date"):
        return
    verdicts, c = _VERDICTS_TABLE, quote_ident(col)
    dialect = dialect_of(con)
    bad = (
        f"list_contains(_failed_rules, {quote_literal(col + '.type')}) or "
        f"list_contains(_failed_rules, {quote_literal(future_rule_id(col))})"
    )
    # The newest value and the first row holding it (file, row order) in one top-1 pass, so the
    # stale sample below is fetched by its position instead of by a second pass.
    newest = con.execute(
        "select cast(ts as timestamp), _source_file, _source_row from (select case when "
        f"{c} is not null and not ({bad}) then {timestamp_or_null_sql(trim_sql(c, dialect), dialect)} end as ts, "
        f"_source_file, _source_row from {verdicts}) t where ts is not null "
        "order by ts desc, _source_file, _source_row limit 1"
    ).fetchone()
    in_batch, newest_row = (newest[0], newest[1:]) if newest else (None, None)
    in_raw = con.execute(f"select cast(max({c}) as timestamp) from raw.{contract.id}").fetchone()[0]
    candidates = [(v, where) for v, where in ((in_batch, "batch"), (in_raw, "raw")) if v]
    if not candidates:
        batch.freshness = {"column": col, "newest": None}
        return
    newest, where = max(candidates, key=lambda t: t[0])
    if not isinstance(newest, dt.datetime):
        newest = dt.datetime.combine(newest, dt.time(0, 0))
    age = (_as_of_end(as_of) - newest).total_seconds() / 86400
    batch.freshness = {
        "column": col,
        "newest": newest.isoformat() + "Z",
        "newest_in": where,
        "age_days": round(age, 3),
    }
    if where == "batch":
        batch.samples["stale"] = _masked(
            con,
            contract,
            f"select {_columns_except(con, verdicts, *_VERDICT_FLAGS)} from {verdicts} "
            "where _source_file = ? and _source_row = ?",
            list(newest_row),
        )


def _measure_volume(con, contract: Contract, batch: StagedBatch, as_of: dt.date, files) -> None:
    """Rows delivered for this as_of (published earlier today + this batch) and the per-as_of
    volumes of the trailing earlier as_of dates with a published file-mode batch."""
    live = bool(batch.extraction) or any(Path(f).name.startswith(LIVE_PREFIX) for f in batch.files)
    history = con.execute(
        "select as_of, sum(extracted) from audit.ingestion_audit a where contract_id = ? "
        "and as_of < ? and not exists (select 1 from audit.ingestion_files f where "
        "f.batch_id = a.batch_id and regexp_matches(f.path, ?)) "
        "group by as_of order by as_of desc limit ?",
        [contract.id, as_of, rf"[/\\]{LIVE_PREFIX}[^/\\]*$", contract.volume_history],
    ).fetchall()
    earlier_today = con.execute(
        "select coalesce(sum(extracted), 0) from audit.ingestion_audit "
        "where contract_id = ? and as_of = ?",
        [contract.id, as_of],
    ).fetchone()[0]
    counts = [int(n) for _, n in history]
    batch.volume = {
        "rows": int(earlier_today) + batch.extracted,
        "delivered": bool(files) or earlier_today > 0,
        "live": live,
        "history": [[d.isoformat(), int(n)] for d, n in history],
        "median": statistics.median(counts) if counts else None,
    }


def publish_batch(
    con: Connection,
    contract: Contract,
    batch: StagedBatch,
    run_id: str,
    landing_dir: Path,
) -> bool:
    """Append the staged batch to raw + quarantine + audit in ONE transaction. False if nothing new.

    The batch's `audit.ingestion_audit` row is the last write, so on an engine without
    transactions (Spark) a publish that stopped halfway is told by its absence and undone by the
    next stage (undo_unfinished_publish)."""
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
    reasons = reasons_by_rule(contract) | {
        future_rule_id(c): f"{c} lies after the as_of day (+ tolerance)"
        for c in contract.future_checked_columns
    }
    reason_case = " ".join(
        f"when '{rid}' then '{text.replace(chr(39), chr(39) * 2)}'" for rid, text in reasons.items()
    )
    cols = ", ".join(quote_ident(c) for c in contract.column_names)
    files = _unchanged_staged_files(contract, batch, landing_dir)
    as_of = dt.date.fromisoformat(batch.as_of)  # a date, which engines without casts require
    con.execute("begin transaction")
    try:
        con.execute(
            f"insert into raw.{contract.id} select {cols}, ?, now(), _source_file from {bt}__clean",
            [batch.batch_id],
        )
        con.execute(
            f"insert into quarantine.{contract.id} select _failed_rules[1], "
            f"coalesce(_read_error, case _failed_rules[1] {reason_case} end), _failed_rules, "
            f"{cols}, ?, _source_file, "
            f"_source_row, ? from {bt}__verdicts "
            "where array_length(_failed_rules) > 0 and not _in_quarantine",
            [batch.batch_id, as_of],
        )
        for f in files:
            con.execute(
                "insert into audit.ingestion_files values (?, ?, ?, ?, ?, ?, now())",
                [contract.id, str(f.path), f.sha256, f.size, batch.batch_id, as_of],
            )
        remember_signatures(con, contract, files)
        con.execute(
            "insert into audit.ingestion_audit values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [
                batch.batch_id,
                contract.id,
                as_of,
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
        # Published: the batch's rows now live in raw and quarantine. Its staging copy is
        # emptied (the tables stay, as the staged asset's), so personal data is not held twice
        # and erasure does not search a second copy of the night's rows. Last: a publish stopped
        # before it still has its batch to publish again.
        for suffix in ("__clean", "__verdicts"):
            con.execute(f"delete from {bt}{suffix}")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return True


def _unchanged_staged_files(
    contract: Contract, batch: StagedBatch, landing_dir: Path
) -> list[LandingFile]:
    """The batch's files as they were staged (and counted), each checked to hold the same bytes
    still (grain: one staged file). The cursor records the files as staged: a file replaced in
    between would be marked done with rows nobody read. Refuse; the next run stages it afresh.

    A file whose stat signature is the one taken when it was read is unchanged (an in-place write
    changes its ctime, a replacement its inode); otherwise, or when that signature proved nothing
    (racy), it is hashed again. The bucket is looked at again first (C360_LANDING_URL): an object
    changed since staging is downloaded over the local copy and so fails the check."""
    from orchestration.ingest.s3_landing import landing_url, sync_entity

    url = landing_url()
    if url:
        sync_entity(landing_dir, contract.source, contract.entity, SUFFIXES, url)
    files = []
    for path in batch.files:
        staged_sha = batch.file_sha256.get(path)
        signature = batch.file_signature.get(path)
        if staged_sha is None:  # a batch staged before file_sha256 existed: read it again
            f = scan_file(Path(path))
        else:
            sig = tuple(signature) if signature else None
            f = LandingFile(Path(path), staged_sha, sig[0] if sig else -1, signature=sig)
            if not unchanged_since_scan(f):
                raise LandingFileError(
                    f"{path}: changed or removed since it was staged; not published"
                )
            if sig is None:  # the size the cursor records: the file's, now known unchanged
                f = replace(f, size=Path(path).stat().st_size)
        files.append(f)
    return files


def _nothing_new_from_live(batch: StagedBatch) -> bool:
    return (
        batch.loaded == 0
        and batch.quarantined == 0
        and bool(batch.files)
        and all(Path(f).name.startswith(LIVE_PREFIX) for f in batch.files)
    )


def load_staged(con: Connection, contract: Contract, run_id: str) -> StagedBatch | None:
    """The outcome staged for `contract` in run `run_id` (what the gate judges)."""
    row = con.execute(
        "select outcome from audit.ingestion_batches where contract_id = ? and run_id = ? "
        "order by staged_at desc limit 1",
        [contract.id, run_id],
    ).fetchone()
    if not row:
        return None
    # a json column: text from DuckDB, already decoded by Postgres' driver
    outcome = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return StagedBatch(**outcome)
