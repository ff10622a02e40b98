"""The row model every diff destination shares (grain: one person of one sync per row): a row to
apply with its payload's JSON text and idempotency key (built in Python by make_row or in SQL by
the diff runner), and how each row ended (Outcome)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orchestration.contracts.rules_sql import quote_literal

Status = Literal["ok", "rejected", "retryable", "unknown"]


class Row:
    """One row to apply at the destination (grain: one person per sync) and its payload's JSON
    text, encoded once (by make_row, or by SQL in the diff runner) and joined into request
    bodies as it is: re-encoding each row for every request was most of the client's CPU.
    `fields` is parsed from the text only when asked for (the Postgres destination)."""

    __slots__ = ("_fields", "idempotency_key", "identifier", "op", "payload_json")

    def __init__(
        self,
        identifier: str,
        op: Literal["upsert", "delete"],
        fields: dict[str, Any] | None,
        idempotency_key: str,
        payload_json: str | None = None,
    ) -> None:
        if fields is None and payload_json is None:
            raise ValueError("a row needs its fields or its payload's JSON text")
        self.identifier, self.op, self.idempotency_key = identifier, op, idempotency_key
        self._fields = fields
        self.payload_json = (
            payload_json
            if payload_json is not None
            else payload_text(idempotency_key, op, identifier, fields_text(fields or {}))
        )

    @classmethod
    def encoded(
        cls, identifier: str, op: Literal["upsert", "delete"], idempotency_key: str, payload: str
    ) -> Row:
        """A row whose payload text was built elsewhere (payload_sql): fields parsed on demand."""
        return cls(identifier, op, None, idempotency_key, payload)

    @property
    def fields(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = json.loads(self.payload_json).get("fields") or {}
        return self._fields

    def payload(self) -> dict[str, Any]:
        """The row as a destination receives it (its payload text, parsed)."""
        return json.loads(self.payload_json)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        return (self.identifier, self.op, self.idempotency_key, self.fields) == (
            other.identifier,
            other.op,
            other.idempotency_key,
            other.fields,
        )

    def __hash__(self) -> int:  # the key stands for the op and fields (equal rows, equal keys)
        return hash((self.identifier, self.op, self.idempotency_key))

    def __repr__(self) -> str:
        return (
            f"Row(identifier={self.identifier!r}, op={self.op!r}, fields={self.fields!r}, "
            f"idempotency_key={self.idempotency_key!r})"
        )


# Encoders built once: json.dumps with non-default arguments builds a new encoder on every call.
# The fields' text: keys sorted (the same dict, the same text and key), UTF-8 as is.
_FIELDS_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str
)
_STRING_ENCODER = json.JSONEncoder(ensure_ascii=False)


def fields_text(fields: dict[str, Any]) -> str:
    """The JSON text make_row sends and hashes for a row's fields (compact, keys sorted)."""
    return _FIELDS_ENCODER.encode(fields)


def key_text(sync: str, identifier: str, op: str, generation: int, fields_json: str | None) -> str:
    """The text an idempotency key is the SHA-256 of (see idempotency_key_sql, the same in SQL):
    `<bytes>:<sync>|<bytes>:<identifier>|<op>|<generation>|<fields JSON text>`. The length
    prefixes (UTF-8 bytes) keep it unambiguous whatever a name or identifier holds; the fields
    are the JSON text sent, as is (the plan stores it, so a resumed row hashes the same bytes)."""
    return (
        f"{len(sync.encode())}:{sync}|{len(identifier.encode())}:{identifier}|{op}|{generation}|"
        f"{fields_json or '{}'}"
    )


def payload_text(key: str, op: str, identifier: str, fields_json: str | None) -> str:
    """A row's payload as compact JSON text (docs/webhook.openapi.yaml, BatchRow)."""
    return (
        f'{{"idempotency_key":"{key}","op":"{op}","identifier":'
        f'{_STRING_ENCODER.encode(identifier)},"fields":{fields_json or "{}"}}}'
    )


def idempotency_key_sql(
    sync: str,
    identifier_sql: str,
    op_sql: str,
    generation_sql: str,
    fields_json_sql: str,
    dialect: str = "duckdb",
) -> str:
    """SQL of make_row's idempotency key over SQL expressions (identifier and fields JSON text as
    varchar, op 'upsert' or 'delete', generation an integer): sha256 of key_text, computed by
    the warehouse for a whole chunk instead of row by row in Python. `dialect`: the warehouse's
    (Postgres hashes bytes: the text's UTF-8, hex-encoded after; the same key)."""
    prefix = quote_literal(f"{len(sync.encode())}:{sync}|")
    length = "strlen" if dialect == "duckdb" else "octet_length"  # UTF-8 bytes, as key_text
    text = (
        f"{prefix} || cast({length}({identifier_sql}) as varchar) || ':' || {identifier_sql}"
        f" || '|' || {op_sql} || '|' || cast({generation_sql} as varchar) || '|' || "
        f"coalesce({fields_json_sql}, '{{}}')"
    )
    if dialect == "duckdb":
        return f"sha256({text})"
    # schema-qualified: written through as Postgres' own functions (not DuckDB's namesakes)
    return f"pg_catalog.encode(pg_catalog.sha256(convert_to({text}, 'UTF8')), 'hex')"


def payload_sql(key_sql: str, op_sql: str, identifier_sql: str, fields_json_sql: str) -> str:
    """SQL of payload_text over SQL expressions: each row's JSON text built by the warehouse
    (the same text on DuckDB and Postgres)."""
    return (
        f"""'{{"idempotency_key":"' || {key_sql} || '","op":"' || {op_sql} || """
        f"""'","identifier":' || cast(to_json(cast({identifier_sql} as varchar)) as varchar) || """
        f"""',"fields":' || coalesce({fields_json_sql}, '{{}}') || '}}'"""
    )


def make_row(
    sync: str,
    identifier: str,
    op: Literal["upsert", "delete"],
    fields: dict,
    generation: int = 0,
) -> Row:
    """A row whose idempotency key is the hash of what it says and of the identifier's
    generation (how many of its sends the destination has acknowledged): resending it is a
    no-op, while the same op and fields sent again after a later change (a re-add after a
    removal) get a new key and are applied."""
    text = fields_text(fields)
    key = hashlib.sha256(key_text(sync, identifier, op, generation, text).encode()).hexdigest()
    return Row(identifier, op, fields, key, payload_text(key, op, identifier, text))


def make_rows(
    sync: str, rows: Iterable[tuple[str, Literal["upsert", "delete"], dict, int]]
) -> list[Row]:
    """make_row for many (identifier, op, fields, generation)."""
    return [make_row(sync, *row) for row in rows]


@dataclass(frozen=True)
class EncodedRows:
    """Rows encoded elsewhere (by SQL in the diff runner), as parallel columns by position
    (grain: one row per identifier; no two rows share an identifier): each row's idempotency
    key and payload JSON text, joined into request bodies as they are. identifiers and ops are
    read only when a fault needs Row objects (bisecting a refused batch, resending, reading
    back), so the common path builds no per-row object."""

    keys: Sequence[str]
    payloads: Sequence[str]
    identifiers: Callable[[], Sequence[str]]
    ops: Callable[[], Sequence[str]]

    def rows(self, start: int, stop: int) -> list[Row]:
        """Row objects for positions start..stop - 1."""
        identifiers, ops = self.identifiers(), self.ops()
        return [
            Row.encoded(identifiers[i], ops[i], self.keys[i], self.payloads[i])  # type: ignore[arg-type]
            for i in range(start, stop)
        ]


@dataclass
class Outcome:
    """How one row ended (grain: one row of one send)."""

    status: Status
    reason: str = ""
    attempts: int = 0


class _AppliedAtFirstAttempt(Outcome):
    """The one outcome shared by every row of a batch the destination applied in full at its
    first attempt (the common case: one object, not one per row). Such a row is settled and
    never sent again, so nothing changes its outcome; a change raises instead of changing
    every row that shares it."""

    def __init__(self) -> None:
        super().__init__("ok", "", 1)
        object.__setattr__(self, "_sealed", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_sealed"):
            raise AttributeError("a settled outcome shared by many rows is not changed")
        super().__setattr__(name, value)


APPLIED_AT_FIRST_ATTEMPT: Outcome = _AppliedAtFirstAttempt()
