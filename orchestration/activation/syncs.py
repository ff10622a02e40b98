"""Sync definitions: one YAML file per sync under dbt_project/syncs/ (segment → destination).

A sync YAML is data, validated against what exists: the segment must be defined
(dbt_project/segments/<name>.yml), the purpose one the consent contract knows, the format one the
destination writes, every mapped field a customer_360 column (what the audience query selects).
It loads within the size, depth and no-alias limits of orchestration.safe_yaml, and no string in
it may open a Jinja tag or hold control characters (the description alone may span lines).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from orchestration.paths import dbt_project_dir
from orchestration.safe_yaml import YamlLimitError
from orchestration.safe_yaml import load as load_yaml

DESTINATIONS = ("file_drop", "webhook", "postgres_table")
CHANNEL_CONTACT_COLUMN = {"email": "email", "sms": "phone"}
MODES = ("upsert", "update_only", "create_only", "mirror", "delete")
TEXT_FIELDS = (
    "name",
    "description",
    "segment",
    "destination",
    "channel",
    "purpose",
    "mode",
    "format",
    "identifier",
)  # uri and table are checked by their own parsers
FORMATS = {"file_drop": ("csv", "parquet")}  # destinations that write a file, and their formats
WEBHOOK_MAX_ROWS, WEBHOOK_MAX_BYTES = 1000, 1_000_000
# postgres_table: unquoted lowercase Postgres identifiers (≤ 63 bytes), so the names in the YAML
# are the names in the database, with no quoting or case folding surprises.
PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PG_RESERVED_COLUMNS = ("identifier", "idempotency_key", "updated_at")


class SyncDefinitionError(ValueError):
    """A sync YAML is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class SyncDefinition:
    """One audience sync: who (segment), where (destination), on which channel and purpose."""

    name: str
    segment: str
    destination: str
    channel: str
    purpose: str
    fields: dict[str, str]  # destination field → customer_360 column
    mode: str
    file_format: str
    path: Path
    identifier: str = "customer_id"  # the destination's key for a person (a customer_360 column)
    batch_rows: int = WEBHOOK_MAX_ROWS
    batch_bytes: int = WEBHOOK_MAX_BYTES
    max_remove_share: float = 0.2  # mirror: refuse a plan removing more of the rows in state
    uri: str | None = None  # file_drop: s3://bucket/prefix or a local folder (None = outbox)
    table: str | None = None  # postgres_table: schema.table
    # diff syncs: a row the destination rejects this many times in a row (same op and fields)
    # is parked — recorded with its reason, not sent again until its fields change
    max_attempts: int = 3

    @property
    def contact_column(self) -> str:
        return CHANNEL_CONTACT_COLUMN[self.channel]


def syncs_dir() -> Path:
    """The folder of sync YAMLs: C360_SYNCS_DIR if set, else dbt_project/syncs."""
    override = os.environ.get("C360_SYNCS_DIR")
    return Path(override) if override else dbt_project_dir() / "syncs"


def _need(doc: dict[str, Any], key: str, path: Path) -> Any:
    if key not in doc or doc[key] in (None, ""):
        raise SyncDefinitionError(f"{path}: {key}: required")
    return doc[key]


@cache
def consent_purposes() -> tuple[str, ...]:
    """The purposes consent is recorded for (the consent contract's validValues of `purpose`):
    a sync for any other purpose would find no consent and send nobody."""
    from orchestration.contracts.model import source_contract

    rules = source_contract("consent__events").rules
    return next(r.valid_values for r in rules if r.column == "purpose" and r.kind == "validValues")


def defined_segments() -> frozenset[str]:
    """Names of the segments defined in dbt_project/segments/ (a segment's name is its file's)."""
    from orchestration.segments.model import segments_dir

    return frozenset(p.stem for p in segments_dir().glob("*.yml") if not p.name.startswith("_"))


def _load_document(path: Path) -> dict[str, Any]:
    from orchestration.segments.model import format_path, line_of, text_problems

    try:
        doc, node = load_yaml(path)
    except YamlLimitError as exc:
        raise SyncDefinitionError(str(exc)) from None
    if node is None or not isinstance(doc, dict):
        raise SyncDefinitionError(f"{path}:1: a sync must be a YAML mapping")
    problems = text_problems(doc)
    if problems:
        raise SyncDefinitionError(
            "\n".join(f"{path}:{line_of(node, p)}: {format_path(p)}: {m}" for p, m in problems)
        )
    return doc


def load_sync(path: Path, segments: Collection[str] | None = None) -> SyncDefinition:
    """The sync in `path`, validated; `segments`: the segment names it may name (default: the
    segments defined in dbt_project/segments/)."""
    doc = _load_document(path)
    unknown = set(doc) - {
        "name",
        "description",
        "segment",
        "destination",
        "channel",
        "purpose",
        "fields",
        "mode",
        "format",
        "identifier",
        "batch_rows",
        "batch_bytes",
        "max_remove_share",
        "max_attempts",
        "uri",
        "table",
    }
    if unknown:
        raise SyncDefinitionError(f"{path}: unknown field(s): {', '.join(sorted(unknown))}")
    for key in TEXT_FIELDS:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise SyncDefinitionError(f"{path}: {key}: must be text")
    destination = _need(doc, "destination", path)
    if destination not in DESTINATIONS:
        raise SyncDefinitionError(f"{path}: destination: {destination!r} not one of {DESTINATIONS}")
    channel = _need(doc, "channel", path)
    if channel not in CHANNEL_CONTACT_COLUMN:
        raise SyncDefinitionError(
            f"{path}: channel: {channel!r} not one of {tuple(CHANNEL_CONTACT_COLUMN)}"
        )
    fields = _need(doc, "fields", path)
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in fields.items()
    ):
        raise SyncDefinitionError(
            f"{path}: fields: must map destination field → customer_360 column"
        )
    from orchestration.segments.model import customer_360_columns

    bad = sorted(v for v in fields.values() if v not in customer_360_columns())
    if bad:
        raise SyncDefinitionError(f"{path}: fields: not customer_360 columns: {', '.join(bad)}")
    mode = doc.get("mode", "upsert")
    if mode not in MODES:
        raise SyncDefinitionError(f"{path}: mode: {mode!r} not one of {MODES}")
    if mode != "upsert" and destination == "file_drop":
        raise SyncDefinitionError(f"{path}: mode: a file drop only supports upsert")
    identifier = doc.get("identifier", "customer_id")
    if identifier != "customer_id" and identifier not in customer_360_columns():
        raise SyncDefinitionError(
            f"{path}: identifier: {identifier!r} is not a customer_360 column"
        )
    batch_rows = doc.get("batch_rows", WEBHOOK_MAX_ROWS)
    if not isinstance(batch_rows, int) or not 1 <= batch_rows <= WEBHOOK_MAX_ROWS:
        raise SyncDefinitionError(f"{path}: batch_rows: an integer from 1 to {WEBHOOK_MAX_ROWS}")
    batch_bytes = doc.get("batch_bytes", WEBHOOK_MAX_BYTES)
    if not isinstance(batch_bytes, int) or not 1024 <= batch_bytes <= WEBHOOK_MAX_BYTES:
        raise SyncDefinitionError(
            f"{path}: batch_bytes: an integer from 1024 to {WEBHOOK_MAX_BYTES}"
        )
    share = doc.get("max_remove_share", 0.2)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise SyncDefinitionError(f"{path}: max_remove_share: a share between 0 and 1")
    max_attempts = doc.get("max_attempts", 3)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise SyncDefinitionError(f"{path}: max_attempts: an integer of at least 1")
    uri = _uri(doc, destination, path)
    table = _table(doc, destination, list(fields), path)
    name = _need(doc, "name", path)
    if name != path.stem:
        raise SyncDefinitionError(f"{path}: name: {name!r} must equal the file name {path.stem!r}")
    segment = _need(doc, "segment", path)
    known = defined_segments() if segments is None else frozenset(segments)
    if segment not in known:
        raise SyncDefinitionError(
            f"{path}: segment: {segment!r} is not a defined segment "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    purpose = doc.get("purpose", "marketing")
    if purpose not in consent_purposes():
        raise SyncDefinitionError(
            f"{path}: purpose: {purpose!r} not one of {consent_purposes()} "
            "(the purposes consent is recorded for)"
        )
    return SyncDefinition(
        name=name,
        segment=segment,
        destination=destination,
        channel=channel,
        purpose=purpose,
        fields=dict(fields),
        mode=mode,
        file_format=_format(doc, destination, path),
        path=path,
        identifier=identifier,
        batch_rows=batch_rows,
        batch_bytes=batch_bytes,
        max_remove_share=float(share),
        max_attempts=max_attempts,
        uri=uri,
        table=table,
    )


def _format(doc: dict[str, Any], destination: str, path: Path) -> str:
    """The file format of a destination that writes files; other destinations take none."""
    formats = FORMATS.get(destination)
    if formats is None:
        if "format" in doc:
            raise SyncDefinitionError(f"{path}: format: only a file_drop sync has a format")
        return "csv"  # unused: the destination writes no file
    file_format = doc.get("format", formats[0])
    if file_format not in formats:
        raise SyncDefinitionError(f"{path}: format: {file_format!r} not one of {formats}")
    return file_format


def _uri(doc: dict[str, Any], destination: str, path: Path) -> str | None:
    """file_drop's optional drop location, validated (scheme, bucket name, no credentials)."""
    if "uri" not in doc:
        return None
    if destination != "file_drop":
        raise SyncDefinitionError(f"{path}: uri: only a file_drop sync has a uri")
    from orchestration.activation.destinations.file_drop import (
        FileDropConfigError,
        parse_drop_uri,
    )

    try:
        parse_drop_uri(doc["uri"])
    except FileDropConfigError as exc:
        raise SyncDefinitionError(f"{path}: uri: {exc}") from None
    return doc["uri"]


def _table(doc: dict[str, Any], destination: str, fields: list[str], path: Path) -> str | None:
    """postgres_table's required schema.table, and field names usable as its column names."""
    if destination != "postgres_table":
        if "table" in doc:
            raise SyncDefinitionError(f"{path}: table: only a postgres_table sync has a table")
        return None
    table = _need(doc, "table", path)
    parts = table.split(".") if isinstance(table, str) else []
    if len(parts) != 2 or not all(PG_IDENTIFIER.match(p) for p in parts):
        raise SyncDefinitionError(
            f"{path}: table: {table!r} must be schema.table, each a lowercase identifier "
            "([a-z_][a-z0-9_]*, at most 63 characters)"
        )
    bad = sorted(f for f in fields if not PG_IDENTIFIER.match(f))
    if bad:
        raise SyncDefinitionError(
            f"{path}: fields: not usable as column names (lowercase [a-z_][a-z0-9_]*): "
            + ", ".join(bad)
        )
    reserved = sorted(f for f in fields if f in PG_RESERVED_COLUMNS)
    if reserved:
        raise SyncDefinitionError(
            f"{path}: fields: {', '.join(reserved)}: reserved column name(s) of the table"
        )
    return table


def load_all_syncs(
    directory: Path | None = None, segments: Collection[str] | None = None
) -> list[SyncDefinition]:
    known = defined_segments() if segments is None else frozenset(segments)
    return [load_sync(p, known) for p in sorted((directory or syncs_dir()).glob("*.yml"))]
