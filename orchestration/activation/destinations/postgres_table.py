"""Postgres-table destination: a sync's audience kept as a table in the customer's own Postgres
(docs/activation-destinations.md).

Grain: one table row per identifier (the sync's key for a person, the primary key). Columns:
`identifier text primary key`, one `text` column per sync field, `idempotency_key text not null`,
`updated_at timestamptz not null` (when the row's content last changed). Field values are stored as
text (a JSON scalar's text: strings as they are, numbers and booleans in JSON notation, null as
NULL): any consumer can read them without knowing our types, and an existing table may declare
typed or constrained columns instead, which Postgres fills from the text (and whose violations
reject the row). The table (and its schema) is created if absent.

Same interface as WebhookClient: `send(rows) -> {idempotency_key: Outcome}`. An upsert is
INSERT … ON CONFLICT (identifier) DO UPDATE, applied only when the idempotency key differs, so
resending a row changes nothing (not even updated_at); a delete is DELETE by identifier. Rows go
in batches of `batch_rows`, each batch one transaction; a batch Postgres refuses is bisected down
to its bad rows, which end `rejected` with the Postgres error (values redacted, never PII); a lost
connection, a stopped server or a cancelled statement leaves the batch `retryable` (resent in
later rounds — safe, since a batch that did commit is a no-op the second time). A permissions or
schema problem (SQLSTATE class 42, 28, 3D, 3F) raises PostgresTableError: every row would fail
alike. The DSN comes from env (`C360_PG_DEST_DSN`) only, and is never logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.errorcodes
import psycopg2.extensions
import psycopg2.extras
from psycopg2 import sql
from pydantic import ValidationInfo, field_validator, model_validator

from orchestration.activation.destinations.registry import DestinationSpec, Limits
from orchestration.activation.destinations.rows import Outcome, Row
from orchestration.activation.sync_definition import DestinationConfig, EnvName
from orchestration.redaction import redact, url_secrets

if TYPE_CHECKING:
    from orchestration.activation.sync_definition import SyncDefinition

# SQLSTATE classes: retry later (connection, server shutting down, resources, serialization
# failures, statement timeout) vs. a problem with the setup that no row can get past.
RETRYABLE_CLASSES = ("08", "40", "53", "57", "58")
CONFIG_CLASSES = ("28", "3D", "3F", "42")
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')


class PostgresTableConfigError(ValueError):
    """The destination is misconfigured (names the env var, field or column)."""


class PostgresTableError(RuntimeError):
    """Postgres refused the statements themselves (privileges, missing column, no unique key on
    identifier): every row would fail alike, so the sync stops instead of rejecting them all."""


@dataclass(frozen=True)
class PostgresTableConfig:
    """Where and how to write: the DSN (secret: from env only), schema.table and the limits."""

    dsn: str = field(repr=False)
    schema: str
    table: str
    batch_rows: int = 1000
    max_attempts: int = 5  # rounds of resending retryable rows
    backoff_seconds: float = 0.5  # first wait between rounds; doubles per round
    connect_timeout_seconds: int = 10
    statement_timeout_ms: int = 60_000  # a statement blocked by a lock ends retryable, not hung

    @classmethod
    def from_env(
        cls,
        table: str,
        batch_rows: int = 1000,
        prefix: str = "C360_PG_DEST",
        dsn_env: str | None = None,
    ) -> PostgresTableConfig:
        """DSN from the env var `dsn_env` (default `C360_PG_DEST_DSN`; libpq keyword/value or
        postgresql:// URI)."""
        dsn_env = dsn_env or f"{prefix}_DSN"
        dsn = os.environ.get(dsn_env)
        if not dsn:
            raise PostgresTableConfigError(f"{dsn_env} is not set")
        schema, _, name = table.partition(".")
        if not schema or not name:
            raise PostgresTableConfigError(f"table: {table!r} must be schema.table")
        return cls(dsn=dsn, schema=schema, table=name, batch_rows=batch_rows)


def to_text(value: Any) -> str | None:
    """A field value as stored: None → NULL, strings unchanged, others as their JSON text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | list | dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)  # dates, decimals: their canonical text


class PostgresTableDestination:
    """Applies rows to one Postgres table for one sync; see the module docstring."""

    def __init__(
        self,
        config: PostgresTableConfig,
        sync: str,
        fields: Sequence[str],
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.config, self.sync, self.fields = config, sync, list(fields)
        self.sleep, self.log = sleep, log
        self._con: psycopg2.extensions.connection | None = None
        self._table = sql.Identifier(config.schema, config.table)
        self._name = f"{config.schema}.{config.table}"
        self.transactions = 0  # batches attempted (bisection included): for tests and logs

    @classmethod
    def from_sync(cls, sync: SyncDefinition, **kwargs: Any) -> PostgresTableDestination:
        """The destination of a `postgres_table` sync: table and batch size from its YAML, DSN
        from env."""
        if sync.table is None:
            raise PostgresTableConfigError(f"{sync.path}: table: required")
        dsn_env = getattr(sync.config, "dsn_env", None)
        config = PostgresTableConfig.from_env(
            sync.table, batch_rows=sync.batch_rows, dsn_env=dsn_env
        )
        return cls(config, sync.name, list(sync.fields), **kwargs)

    # --- connection and table --------------------------------------------------------------

    def _connection(self) -> psycopg2.extensions.connection:
        if self._con is None or self._con.closed:
            try:
                con = psycopg2.connect(
                    self.config.dsn,
                    connect_timeout=self.config.connect_timeout_seconds,
                    application_name=f"c360 sync {self.sync}"[:63],
                )
            except psycopg2.OperationalError as exc:  # unreachable, refused: send retries
                # re-raised with a redacted message only (libpq may echo parts of the DSN)
                raise psycopg2.OperationalError(_connection_reason(exc, self.config.dsn)) from None
            except psycopg2.Error as exc:
                # a DSN libpq cannot parse: its message quotes the DSN, so only its kind shows
                kind = (str(exc).split(":", 1)[0].strip() or type(exc).__name__)[:40]
                raise PostgresTableConfigError(
                    f"C360_PG_DEST_DSN is not a valid libpq DSN or postgresql:// URI ({kind})"
                ) from None
            try:
                with con.cursor() as cur:
                    cur.execute("set statement_timeout = %s", [self.config.statement_timeout_ms])
                con.commit()
                self._ensure_table(con)
            except psycopg2.Error as exc:
                con.close()
                if _kind(exc) == "config":
                    raise PostgresTableError(f"{self._name}: {self._reason(exc, [])}") from None
                raise
            except BaseException:
                con.close()
                raise
            self._con = con
        return self._con

    def _ensure_table(self, con: psycopg2.extensions.connection) -> None:
        """Create schema and table if absent; check an existing one can take our statements."""
        name, regclass = self._name, self._table.as_string(con)
        with con.cursor() as cur:
            cur.execute("select to_regclass(%s)", [regclass])
            if cur.fetchone()[0] is None:
                # only when absent: a table prepared by a DBA needs no CREATE privilege from us
                columns = [
                    sql.SQL("{} text").format(sql.Identifier(f)) for f in self.fields
                ]  # why text: see the module docstring
                cur.execute(
                    sql.SQL("create schema if not exists {}").format(
                        sql.Identifier(self.config.schema)
                    )
                )
                cur.execute(
                    sql.SQL(
                        "create table if not exists {} (identifier text primary key, {}, "
                        "idempotency_key text not null, "
                        "updated_at timestamptz not null default now())"
                    ).format(self._table, sql.SQL(", ").join(columns))
                )
            cur.execute(
                "select column_name from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                [self.config.schema, self.config.table],
            )
            present = {r[0] for r in cur.fetchall()}
            missing = [
                c
                for c in ["identifier", *self.fields, "idempotency_key", "updated_at"]
                if c not in present
            ]
            if missing:
                raise PostgresTableError(f"{name}: missing column(s): {', '.join(missing)}")
            # ON CONFLICT (identifier) needs a unique index on exactly that column
            cur.execute(
                """
                select exists (
                    select 1 from pg_index as i
                    join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                    where i.indrelid = to_regclass(%s) and i.indisunique and i.indnkeyatts = 1
                        and i.indpred is null and a.attname = 'identifier'
                )
                """,
                [regclass],
            )
            if not cur.fetchone()[0]:
                raise PostgresTableError(f"{name}: identifier needs a primary key or unique index")
        con.commit()

    def _drop_connection(self) -> None:
        if self._con is not None:
            with contextlib.suppress(psycopg2.Error):  # already broken: nothing to close
                self._con.close()
        self._con = None

    def close(self) -> None:
        """Close the connection (a later send reconnects)."""
        self._drop_connection()

    def __enter__(self) -> PostgresTableDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one batch in one transaction -------------------------------------------------------

    def _statements(self, cur: psycopg2.extensions.cursor, rows: Sequence[Row]) -> None:
        deletes = [r.identifier for r in rows if r.op == "delete"]
        upserts = [r for r in rows if r.op == "upsert"]
        if deletes:
            cur.execute(
                sql.SQL("delete from {} where identifier = any(%s)").format(self._table),
                [deletes],
            )
        if upserts:
            fields = [sql.Identifier(f) for f in self.fields]
            statement = sql.SQL(
                "insert into {table} as target (identifier, {fields}, idempotency_key, updated_at) "
                "values %s on conflict (identifier) do update set {updates}, "
                "idempotency_key = excluded.idempotency_key, updated_at = excluded.updated_at "
                # the same row again (same key) is not rewritten: a resend is a no-op
                "where target.idempotency_key is distinct from excluded.idempotency_key"
            ).format(
                table=self._table,
                fields=sql.SQL(", ").join(fields),
                updates=sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(f) for f in fields),
            )
            template = "(" + ", ".join(["%s"] * (len(self.fields) + 2)) + ", now())"
            values = [
                (r.identifier, *(to_text(r.fields.get(f)) for f in self.fields), r.idempotency_key)
                for r in upserts
            ]
            psycopg2.extras.execute_values(
                cur, statement.as_string(cur), values, template=template, page_size=len(values)
            )

    def _send_batch(self, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        """Apply `rows` in one transaction; on a data error bisect down to the bad rows."""
        con = self._connection()  # raises when the server cannot be reached (send handles it)
        self.transactions += 1
        for row in rows:
            outcomes.setdefault(row.idempotency_key, Outcome("unknown")).attempts += 1
        try:
            with con.cursor() as cur:
                self._statements(cur, rows)
            con.commit()
        except psycopg2.Error as exc:
            try:
                con.rollback()
            except psycopg2.Error:
                self._drop_connection()
            kind = _kind(exc)
            if kind == "retryable":
                self._drop_connection()
                for row in rows:
                    outcome = outcomes[row.idempotency_key]
                    outcome.status, outcome.reason = (
                        "retryable",
                        _connection_reason(exc, self.config.dsn),
                    )
                return
            if kind == "config":
                raise PostgresTableError(f"{self._name}: {self._reason(exc, [])}") from None
            if len(rows) == 1:
                outcome = outcomes[rows[0].idempotency_key]
                outcome.status, outcome.reason = "rejected", self._reason(exc, rows)
                return
            half = len(rows) // 2
            self._send_batch(rows[:half], outcomes)
            self._send_batch(rows[half:], outcomes)
            return
        for row in rows:
            outcome = outcomes[row.idempotency_key]
            outcome.status, outcome.reason = "ok", ""

    def _reason(self, exc: psycopg2.Error, rows: Sequence[Row]) -> str:
        """SQLSTATE, its name and Postgres' primary message with values redacted: a quoted word
        survives only if it names our table, a column or the failing constraint/type (DETAIL,
        which echoes the row, is never used), and the row's own values are masked too."""
        diag = exc.diag
        message = diag.message_primary or str(exc).splitlines()[0]
        known = {
            self.config.schema,
            self.config.table,
            "identifier",
            "idempotency_key",
            "updated_at",
            *self.fields,
            diag.constraint_name,
            diag.column_name,
            diag.datatype_name,
            diag.table_name,
            diag.schema_name,
        } - {None, ""}
        message = _QUOTED.sub(
            lambda m: m.group(0) if m.group(1) in known else '"<redacted>"', message
        )
        for row in rows:
            for value in [row.identifier, *row.fields.values()]:
                text = to_text(value)
                if text and len(text) >= 3 and text not in known:
                    message = message.replace(text, "<redacted>")
        code = exc.pgcode or ""
        name = psycopg2.errorcodes.lookup(code) if code else None
        return f"{code} {name.lower() if name else 'error'}: {message}".strip()

    # --- the public call --------------------------------------------------------------------

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """Every row's outcome by idempotency key (see the module docstring). Retryable rows are
        resent in later rounds with backoff; rows still retryable after max_attempts stay so."""
        rows = list(rows)
        by_key = {r.idempotency_key: r for r in rows}
        outcomes: dict[str, Outcome] = {}
        for row in rows:  # rows this table cannot take are refused alone, before any SQL
            unknown = ", ".join(sorted(set(row.fields) - set(self.fields)))
            if row.op not in ("upsert", "delete"):
                outcomes[row.idempotency_key] = Outcome("rejected", f"unknown op {row.op!r}", 1)
            elif unknown:
                reason = f"unknown field(s): {unknown}"
                outcomes[row.idempotency_key] = Outcome("rejected", reason, 1)
        pending = [r for r in rows if r.idempotency_key not in outcomes]
        size = self.config.batch_rows
        for round_number in range(1, self.config.max_attempts + 1):
            for start in range(0, len(pending), size):
                batch = pending[start : start + size]
                try:
                    self._send_batch(batch, outcomes)
                except psycopg2.OperationalError as exc:  # cannot connect: rest of the round
                    reason = _connection_reason(exc, self.config.dsn)
                    for row in pending[start:]:
                        # rows that ended before the connection went (earlier halves of a
                        # bisected batch) keep their outcome
                        outcome = outcomes.setdefault(row.idempotency_key, Outcome("retryable"))
                        if outcome.status not in ("ok", "rejected"):
                            outcome.status, outcome.reason = "retryable", reason
                    break
            pending = [by_key[k] for k, o in outcomes.items() if o.status == "retryable"]
            if not pending or round_number == self.config.max_attempts:
                break
            self.log(f"{self.sync}: round {round_number}: {len(pending)} rows to resend")
            self.sleep(self.config.backoff_seconds * 2 ** (round_number - 1))
        return outcomes


def _kind(exc: psycopg2.Error) -> str:
    """'retryable', 'config' or 'row' (a data problem of some row: bisect to find it)."""
    code = exc.pgcode or ""
    if not code:  # no SQLSTATE: the connection broke before the server could answer
        return (
            "retryable"
            if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)
            else "row"
        )
    if code[:2] in RETRYABLE_CLASSES:
        return "retryable"
    if code[:2] in CONFIG_CLASSES:
        return "config"
    return "row"


def _connection_reason(exc: psycopg2.Error, dsn: str = "") -> str:
    """The first line of a connection error (host and port at most), credentials redacted: a
    URL's userinfo, `password=`, and the DSN's own password wherever it is (redaction.py)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if first.startswith("connection: "):  # already a reason (re-raised by _connection)
        return first
    return f"connection: {redact(first, _dsn_secrets(dsn))}"


def _dsn_secrets(dsn: str) -> list[str]:
    """The password of a libpq DSN, URI (postgresql://u:pw@host) or keyword form (password=pw)."""
    if "://" in dsn:
        return url_secrets(dsn)
    m = re.search(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn)
    return [m.group(1).strip("'")] if m else []


# unquoted lowercase Postgres identifiers (<= 63 bytes), so the names in the YAML are the names
# in the database, with no quoting or case folding surprises
PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PG_RESERVED_COLUMNS = ("identifier", "idempotency_key", "updated_at")


class PostgresTableSyncConfig(DestinationConfig):
    """A postgres_table sync's settings: `table` (schema.table, lowercase identifiers) and the
    env var holding the DSN; the sync's field names must be usable as column names."""

    table: Any
    dsn_env: EnvName = "C360_PG_DEST_DSN"

    @field_validator("table", mode="before")
    @classmethod
    def _schema_table(cls, table: Any) -> str:
        parts = table.split(".") if isinstance(table, str) else []
        if len(parts) != 2 or not all(PG_IDENTIFIER.match(p) for p in parts):
            raise ValueError(
                f"{table!r} must be schema.table, each a lowercase identifier "
                "([a-z_][a-z0-9_]*, at most 63 characters)"
            )
        return table

    @model_validator(mode="after")
    def _field_names(self, info: ValidationInfo) -> PostgresTableSyncConfig:
        fields = (info.context or {}).get("fields", [])
        bad = sorted(f for f in fields if not PG_IDENTIFIER.match(f))
        if bad:
            raise ValueError(
                "fields: not usable as column names (lowercase [a-z_][a-z0-9_]*): " + ", ".join(bad)
            )
        reserved = sorted(f for f in fields if f in PG_RESERVED_COLUMNS)
        if reserved:
            raise ValueError(f"fields: {', '.join(reserved)}: reserved column name(s) of the table")
        return self


def _build(sync: SyncDefinition, log: Callable[[str], None]) -> PostgresTableDestination:
    return PostgresTableDestination.from_sync(sync, log=log)


DESTINATION = DestinationSpec(
    kind="postgres_table",
    description="rows upserted into (and deleted from) one table of a Postgres database",
    config=PostgresTableSyncConfig,
    limits=Limits(batch_rows=1000, max_in_flight=1),
    build=_build,
    errors=(PostgresTableConfigError, PostgresTableError),
    top_level=("table",),
)
