"""The warehouse's first nightly as_of, which `make ui` uses as the first partition.

Prints the earliest as_of any ingestion batch ran for (one date, YYYY-MM-DD), or nothing when the
warehouse does not exist or has no run yet — the partitions then keep their default start.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestration.engine import table_exists
from orchestration.paths import warehouse_path
from orchestration.warehouse import connect


def first_as_of(path: Path | None = None) -> str | None:
    """The earliest `as_of` in audit.ingestion_batches, or None (no warehouse, no run)."""
    db = Path(path) if path else warehouse_path()
    if not db.exists():
        return None
    con = connect(db, read_only=True)
    try:
        if not table_exists(con, "audit", "ingestion_batches"):
            return None
        row = con.execute("select min(as_of) from audit.ingestion_batches").fetchone()
    finally:
        con.close()
    return row[0].isoformat() if row and row[0] else None


def main() -> int:
    day = first_as_of()
    if day:
        sys.stdout.write(day + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
