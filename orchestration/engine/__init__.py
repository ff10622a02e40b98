"""The warehouse interface of the Python side (docs/scale.md, section 5).

The Python steps write DuckDB's SQL against a connection. `Connection` is the part of DuckDB's
connection they use: `execute` with `?` parameters (returning something to fetch from),
`fetchone` / `fetchall` / `fetch_arrow_table`, and `register` / `unregister` to hand Arrow rows
to SQL as a named relation. A DuckDB connection is one as it is (the embedded default, nothing
in between); `engine.postgres.PostgresConnection` is one on Postgres, running each statement
after translating it (`engine.transpile`). A step typed with `Connection` runs on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa


class Connection(Protocol):
    """What a Python step may ask of the warehouse (DuckDB's names; grain: one open session)."""

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Any:
        """Run one statement (DuckDB dialect, `?` placeholders); fetch from what it returns."""
        ...

    def register(self, view_name: str, python_object: pa.Table) -> Any:
        """Make an Arrow table readable by SQL as `view_name` until `unregister`."""
        ...

    def unregister(self, view_name: str) -> Any:
        """Forget a relation `register` made."""
        ...
