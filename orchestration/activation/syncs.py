"""Sync definitions: one YAML file per sync under dbt_project/syncs/ (segment → destination)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestration.paths import dbt_project_dir

DESTINATIONS = ("file_drop", "webhook")
CHANNEL_CONTACT_COLUMN = {"email": "email", "sms": "phone"}
MODES = ("upsert", "update_only", "create_only", "mirror", "delete")
WEBHOOK_MAX_ROWS, WEBHOOK_MAX_BYTES = 1000, 1_000_000


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

    @property
    def contact_column(self) -> str:
        return CHANNEL_CONTACT_COLUMN[self.channel]


def syncs_dir() -> Path:
    return dbt_project_dir() / "syncs"


def _need(doc: dict[str, Any], key: str, path: Path) -> Any:
    if key not in doc or doc[key] in (None, ""):
        raise SyncDefinitionError(f"{path}: {key}: required")
    return doc[key]


def load_sync(path: Path) -> SyncDefinition:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise SyncDefinitionError(f"{path}: a sync must be a YAML mapping")
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
    }
    if unknown:
        raise SyncDefinitionError(f"{path}: unknown field(s): {', '.join(sorted(unknown))}")
    destination = _need(doc, "destination", path)
    if destination not in DESTINATIONS:
        raise SyncDefinitionError(f"{path}: destination: {destination!r} not one of {DESTINATIONS}")
    channel = _need(doc, "channel", path)
    if channel not in CHANNEL_CONTACT_COLUMN:
        raise SyncDefinitionError(
            f"{path}: channel: {channel!r} not one of {tuple(CHANNEL_CONTACT_COLUMN)}"
        )
    fields = _need(doc, "fields", path)
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
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
    name = _need(doc, "name", path)
    if name != path.stem:
        raise SyncDefinitionError(f"{path}: name: {name!r} must equal the file name {path.stem!r}")
    return SyncDefinition(
        name=name,
        segment=_need(doc, "segment", path),
        destination=destination,
        channel=channel,
        purpose=doc.get("purpose", "marketing"),
        fields=dict(fields),
        mode=mode,
        file_format=doc.get("format", "csv"),
        path=path,
        identifier=identifier,
        batch_rows=batch_rows,
        batch_bytes=batch_bytes,
        max_remove_share=float(share),
    )


def load_all_syncs(directory: Path | None = None) -> list[SyncDefinition]:
    return [load_sync(p) for p in sorted((directory or syncs_dir()).glob("*.yml"))]
