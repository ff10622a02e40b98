"""Sync definitions: one YAML file per sync under dbt_project/syncs/ (segment → destination)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestration.paths import dbt_project_dir

DESTINATIONS = ("file_drop",)
CHANNEL_CONTACT_COLUMN = {"email": "email", "sms": "phone"}
MODES = ("upsert",)


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
    )


def load_all_syncs(directory: Path | None = None) -> list[SyncDefinition]:
    return [load_sync(p) for p in sorted((directory or syncs_dir()).glob("*.yml"))]
