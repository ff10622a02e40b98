"""Live extraction into the landing layout: the step before write-audit-publish's stage step.

For one contract: read the cursor from what was PUBLISHED (max `updated_at` in raw), extract the
source rows with `cursor - lookback <= updated_at < as_of + 1 day` (plus rows with no updated_at),
and write them as one JSON-lines file `<landing>/<source>/<entity>/dt=<as_of>/live-<stamp>.jsonl`
(text values, only the contract columns the source delivered). The stage step then reads it like
any landing file: contract split, quarantine, dedup (within the batch and against what raw and
quarantine already hold), gate, publish. So:

* the cursor advances only when a batch is published (it IS the published data);
* rows whose updated_at equals the cursor, and rows of transactions that committed late with an
  older updated_at (within the lookback), are read again and published once: the unchanged ones
  are counted as deduplicated;
* a blocked batch's file is never published; the next extraction replaces it (same or wider range);
* a re-read with nothing new (every row already published) publishes nothing: reruns at the same
  as_of leave raw, quarantine and audit unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from orchestration.contracts.model import Contract
from orchestration.extract import config as cfg
from orchestration.extract.text import to_text, utc_text
from orchestration.ingest.landing import LIVE_PREFIX
from orchestration.ingest.wap import ensure_tables

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class ExtractOutcome:
    """What one live extraction read (no values: counts, range, file)."""

    contract_id: str
    cursor: str | None  # max updated_at published before this extraction (None: nothing yet)
    since: str  # inclusive lower bound used (cursor - lookback, or the epoch)
    until: str  # exclusive upper bound (the day after as_of, 00:00 UTC)
    rows: int = 0
    file: str | None = None
    absent_columns: list[str] = field(default_factory=list)  # contract columns the source lacks
    replaced_unpublished: int = 0  # earlier unpublished live files of this entity removed
    seconds: float = 0.0

    def as_metadata(self) -> dict:
        return asdict(self)


def published_cursor(con: duckdb.DuckDBPyConnection, contract: Contract) -> dt.datetime | None:
    """The max ordering-column value published to raw (naive UTC in raw) as an aware datetime."""
    col = contract.ordering_column
    value = con.execute(f'select max("{col}") from raw.{contract.id}').fetchone()[0]
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def extraction_window(
    con: duckdb.DuckDBPyConnection, contract: Contract, as_of: dt.date, lookback_seconds: int
) -> tuple[dt.datetime | None, dt.datetime, dt.datetime]:
    """(published cursor, since, until) for a run at `as_of`."""
    cursor = published_cursor(con, contract)
    since = EPOCH if cursor is None else cursor - dt.timedelta(seconds=lookback_seconds)
    until = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0), dt.UTC)
    return cursor, since, until


def _published_paths(con: duckdb.DuckDBPyConnection, contract: Contract) -> set[str]:
    rows = con.execute(
        "select path from audit.ingestion_files where contract_id = ?", [contract.id]
    ).fetchall()
    return {r[0] for r in rows}


def _replace_unpublished(
    con: duckdb.DuckDBPyConnection, contract: Contract, landing_dir: Path
) -> int:
    """Remove live files never published (a blocked or crashed run): re-extraction supersedes them."""
    root = landing_dir / contract.source / contract.entity
    if not root.exists():
        return 0
    published = _published_paths(con, contract)
    removed = 0
    for path in root.rglob(f"{LIVE_PREFIX}*.jsonl"):
        if str(path) not in published:
            path.unlink()
            removed += 1
    return removed


def _rows(source: str, contract: Contract, since: dt.datetime, until: dt.datetime):
    if source == "crm":
        from orchestration.extract import crm

        return crm.extract_rows(cfg.crm_config(), contract, since, until)
    from orchestration.extract import shop

    return shop.extract_rows(cfg.shop_config(), contract, since, until)


def extract_to_landing(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    landing_dir: Path,
    as_of: dt.date,
    rows=None,
    lookback_seconds: int | None = None,
) -> ExtractOutcome:
    """Extract `contract`'s new rows from its live source into one landing file.

    `rows(contract, since, until)` overrides the source reader (the configured CRM or shop
    otherwise); `lookback_seconds` overrides C360_<SOURCE>_LOOKBACK_SECONDS.
    """
    started = time.perf_counter()
    ensure_tables(con, contract)
    landing_dir = Path(landing_dir)
    if lookback_seconds is None:
        getter = cfg.crm_config if contract.source == "crm" else cfg.shop_config
        lookback_seconds = getter().lookback_seconds
    cursor, since, until = extraction_window(con, contract, as_of, lookback_seconds)
    out = ExtractOutcome(
        contract.id, utc_text(cursor) if cursor else None, utc_text(since), utc_text(until)
    )
    out.replaced_unpublished = _replace_unpublished(con, contract, landing_dir)
    folder = landing_dir / contract.source / contract.entity / f"dt={as_of.isoformat()}"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = folder / f"{LIVE_PREFIX}{stamp}.jsonl"
    tmp = folder / f".{final.name}.tmp"  # hidden: discover() ignores it until renamed
    columns = contract.column_names
    seen: set[str] = set()
    reader = (
        rows(contract, since, until) if rows else _rows(contract.source, contract, since, until)
    )
    fh = None
    try:
        for record in reader:
            if fh is None:
                folder.mkdir(parents=True, exist_ok=True)
                fh = tmp.open("w")
            present = {c: to_text(record[c]) for c in columns if c in record}
            seen.update(present)
            fh.write(json.dumps(present, ensure_ascii=False) + "\n")
            out.rows += 1
    except BaseException:
        if fh is not None:
            fh.close()
            tmp.unlink(missing_ok=True)
        raise
    if fh is not None:
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        tmp.rename(final)
        out.file = str(final)
        out.absent_columns = [c for c in columns if c not in seen]
    out.seconds = round(time.perf_counter() - started, 3)
    return out
