"""What the warehouse Connections on a DB-API driver share (Postgres through psycopg2, Spark's
Thrift Server through PyHive): DuckDB-dialect statements translated for the engine and run on a
fresh cursor, the last cursor's results to fetch, and closing with the `with` block."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from orchestration.engine.transpile import UntranslatableSQL, translate

# C360_STATEMENT_LOG=FILE: one JSON line per engine statement (its seconds and its start, string
# literals masked so no identifier or personal value is written), to see where a night's time
# on a server engine goes
STATEMENT_LOG = "C360_STATEMENT_LOG"
_LITERAL = re.compile(r"'(?:[^']|'')*'")


def _log_statement(statement: str, seconds: float, dialect: str) -> None:
    path = os.environ.get(STATEMENT_LOG)
    if not path:
        return
    shape = _LITERAL.sub("'?'", " ".join(statement.split()))[:200]
    line = json.dumps({"engine": dialect, "seconds": round(seconds, 4), "statement": shape})
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


class DbApiConnection:
    """Base of a warehouse Connection over a DB-API connection `_con` in `dialect`."""

    dialect = "duckdb"

    def __init__(self, con: Any) -> None:
        self._con = con
        self._cursor: Any = None

    def execute(
        self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Self:
        """Run `sql` (DuckDB dialect; several statements allowed without parameters)."""
        statements = translate(sql, self.dialect)
        if parameters is not None and len(statements) > 1:
            raise UntranslatableSQL(
                f"{len(statements)} statements with parameters: run them one by one; "
                f"SQL: {' '.join(sql.split())[:160]}"
            )
        cursor = self._con.cursor()
        # always formatted with arguments (a dict for $name placeholders), so the doubled `%`
        # of translate() is undone
        args = dict(parameters) if isinstance(parameters, Mapping) else tuple(parameters or ())
        for statement in statements:
            self._checked(cursor, statement, args)
        self._cursor = cursor
        return self

    def _checked(self, cursor: Any, statement: str, args: Any = None) -> Any:
        """Run one engine statement on `cursor`; a refusal raised as `_failure` says it."""
        started = time.monotonic()
        try:
            if args is None:
                cursor.execute(statement)
            else:
                cursor.execute(statement, args)
            _log_statement(statement, time.monotonic() - started, self.dialect)
        except Exception as exc:
            failure = self._failure(exc, statement)
            if failure is exc:
                raise
            raise failure from None  # the driver's own error says the same at more length
        return cursor

    def _failure(self, exc: Exception, statement: str) -> Exception:
        """The error to raise for a statement the engine refused (the driver's own here)."""
        return exc

    def _last(self) -> Any:
        if self._cursor is None:
            raise RuntimeError("nothing to fetch: no statement has run on this connection")
        return self._cursor

    @property
    def description(self) -> Any:
        """The last result's columns (DB-API: each item's [0] is the name)."""
        return self._last().description

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._last().fetchone()
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._last().fetchall()]

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
