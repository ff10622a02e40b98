"""Sync definitions: one YAML file per sync under dbt_project/syncs/ (segment → destination).

A sync YAML is data, validated against what exists: the segment must be defined
(dbt_project/segments/<name>.yml), the purpose one the consent contract knows, the format one the
destination writes, every mapped field a customer_360 column (what the audience query selects).
It loads within the size, depth and no-alias limits of orchestration.safe_yaml, and no string in
it may open a Jinja tag or hold control characters (the description alone may span lines).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from orchestration.activation.arms import ARM_FIELD, ArmsError, parse_arms
from orchestration.activation.destinations import registry
from orchestration.activation.destinations.registry import MODES
from orchestration.activation.sync_definition import (
    CHANNEL_CONTACT_COLUMN,
    DestinationConfig,
    SyncDefinition,
    SyncDefinitionError,
    consent_purposes,
)
from orchestration.paths import dbt_project_dir
from orchestration.safe_yaml import YamlLimitError
from orchestration.safe_yaml import load as load_yaml

TEXT_FIELDS = (
    "name",
    "description",
    "segment",
    "action",
    "destination",
    "channel",
    "purpose",
    "mode",
    "format",
    "identifier",
)  # a destination's own fields are checked by its config schema
COMMON_KEYS = frozenset(
    {
        "name", "description", "segment", "action", "destination", "channel", "purpose",
        "fields", "mode", "format", "identifier", "batch_rows", "batch_bytes", "max_in_flight", "rate_per_second",
        "max_remove_share", "max_attempts", "config", "arms", "experiment",
    }
)  # fmt: skip


def syncs_dir() -> Path:
    """The folder of sync YAMLs: C360_SYNCS_DIR if set, else dbt_project/syncs."""
    override = os.environ.get("C360_SYNCS_DIR")
    return Path(override) if override else dbt_project_dir() / "syncs"


def _need(doc: dict[str, Any], key: str, path: Path) -> Any:
    if key not in doc or doc[key] in (None, ""):
        raise SyncDefinitionError(f"{path}: {key}: required")
    return doc[key]


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
    for key in TEXT_FIELDS:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise SyncDefinitionError(f"{path}: {key}: must be text")
    destination = _need(doc, "destination", path)
    known_kinds = registry.kinds()
    if destination not in known_kinds:
        raise SyncDefinitionError(f"{path}: destination: {destination!r} not one of {known_kinds}")
    spec = registry.get(destination)
    elsewhere = {
        k: other.kind
        for other in registry.destinations().values()
        for k in other.top_level
        if other.kind != destination and k not in spec.top_level
    }
    unknown = set(doc) - COMMON_KEYS - set(spec.top_level) - set(elsewhere)
    if unknown:
        raise SyncDefinitionError(f"{path}: unknown field(s): {', '.join(sorted(unknown))}")
    for key in sorted(set(doc) & set(elsewhere)):
        raise SyncDefinitionError(f"{path}: {key}: only a {elsewhere[key]} sync has a {key}")
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

    try:
        arms, experiment = parse_arms(doc, path)
    except ArmsError as exc:
        raise SyncDefinitionError(str(exc)) from None
    mappable = set(customer_360_columns()) | ({ARM_FIELD} if arms else set())
    bad = sorted(v for v in fields.values() if v not in mappable)
    if bad:
        raise SyncDefinitionError(f"{path}: fields: not customer_360 columns: {', '.join(bad)}")
    mode = doc.get("mode", "upsert")
    if mode not in MODES:
        raise SyncDefinitionError(f"{path}: mode: {mode!r} not one of {MODES}")
    if mode not in spec.modes:
        raise SyncDefinitionError(
            f"{path}: mode: a {destination.replace('_', ' ')} only supports "
            + ", ".join(spec.modes)
        )
    identifier = doc.get("identifier", "customer_id")
    if identifier != "customer_id" and identifier not in customer_360_columns():
        raise SyncDefinitionError(
            f"{path}: identifier: {identifier!r} is not a customer_360 column"
        )
    limits = spec.limits
    batch_rows = doc.get("batch_rows", limits.batch_rows)
    if not _integer(batch_rows) or not 1 <= batch_rows <= limits.rows_ceiling:
        raise SyncDefinitionError(f"{path}: batch_rows: an integer from 1 to {limits.rows_ceiling}")
    batch_bytes = doc.get("batch_bytes", limits.batch_bytes)
    if not _integer(batch_bytes) or not 1024 <= batch_bytes <= limits.bytes_ceiling:
        raise SyncDefinitionError(
            f"{path}: batch_bytes: an integer from 1024 to {limits.bytes_ceiling}"
        )
    max_in_flight = doc.get("max_in_flight")
    if max_in_flight is not None and (not _integer(max_in_flight) or not 1 <= max_in_flight <= 64):
        raise SyncDefinitionError(f"{path}: max_in_flight: an integer from 1 to 64")
    rate = doc.get("rate_per_second")
    if rate is not None and (_not_number(rate) or rate <= 0):
        raise SyncDefinitionError(f"{path}: rate_per_second: a number above 0")
    if rate is not None and limits.rate_per_second is not None and rate > limits.rate_per_second:
        raise SyncDefinitionError(
            f"{path}: rate_per_second: at most {limits.rate_per_second} for {destination}"
        )
    share = doc.get("max_remove_share", 0.2)
    if _not_number(share) or not 0 <= share <= 1:
        raise SyncDefinitionError(f"{path}: max_remove_share: a share between 0 and 1")
    max_attempts = doc.get("max_attempts", 3)
    if not _integer(max_attempts) or max_attempts < 1:
        raise SyncDefinitionError(f"{path}: max_attempts: an integer of at least 1")
    config = _config(doc, spec, dict(fields), identifier, path)
    name = _need(doc, "name", path)
    if name != path.stem:
        raise SyncDefinitionError(f"{path}: name: {name!r} must equal the file name {path.stem!r}")
    if "action" in doc:  # a next-best action's audience (orchestration/insight/)
        from orchestration.insight.next_best_action_model import sync_audience

        segment = sync_audience(doc, path)
    else:
        segment = _need(doc, "segment", path)
    known = defined_segments() if segments is None else frozenset(segments)
    if segment not in known and "action" not in doc:
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
        file_format=_format(doc, spec, path),
        path=path,
        identifier=identifier,
        batch_rows=batch_rows,
        batch_bytes=batch_bytes,
        max_remove_share=float(share),
        max_attempts=max_attempts,
        uri=getattr(config, "uri", None),
        table=getattr(config, "table", None),
        config=config,
        max_in_flight=max_in_flight,
        rate_per_second=None if rate is None else float(rate),
        arms=arms,
        experiment=experiment,
    )


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float)


def _config(
    doc: dict[str, Any],
    spec: registry.DestinationSpec,
    fields: dict[str, str],
    identifier: str,
    path: Path,
) -> DestinationConfig:
    """The sync's `config:` mapping (and the top-level keys the destination allows there),
    validated by the destination's schema; an error names the file and the field. A schema's
    validators see the context {"fields": field names, "columns": field → customer_360 column,
    "identifier": the sync's identifier, "path": the file}."""
    from pydantic import ValidationError

    raw = doc.get("config", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SyncDefinitionError(f"{path}: config: must be a mapping")
    data = dict(raw)
    for key in spec.top_level:
        if key in doc:
            if key in data:
                raise SyncDefinitionError(f"{path}: {key}: given twice (top level and config)")
            data[key] = doc[key]
    try:
        context = {"fields": list(fields), "columns": fields, "identifier": identifier,
                   "path": path}  # fmt: skip
        return spec.config.model_validate(data, context=context)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"])
            where = loc if loc in spec.top_level else f"config.{loc}" if loc else ""
            message = _message(error)
            problems.append(f"{path}: {where}: {message}" if where else f"{path}: {message}")
        raise SyncDefinitionError("\n".join(problems)) from None


def _message(error: Any) -> str:
    """A pydantic error as a sentence: a validator's own message as written."""
    if error["type"] == "missing":
        return "required"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _format(doc: dict[str, Any], spec: registry.DestinationSpec, path: Path) -> str:
    """The file format of a destination that writes files; other destinations take none."""
    if not spec.formats:
        if "format" in doc:
            writers = [s.kind for s in registry.destinations().values() if s.formats]
            raise SyncDefinitionError(
                f"{path}: format: only a {' or '.join(writers)} sync has a format"
            )
        return "csv"  # unused: the destination writes no file
    file_format = doc.get("format", spec.formats[0])
    if file_format not in spec.formats:
        raise SyncDefinitionError(f"{path}: format: {file_format!r} not one of {spec.formats}")
    return file_format


def load_all_syncs(
    directory: Path | None = None, segments: Collection[str] | None = None
) -> list[SyncDefinition]:
    known = defined_segments() if segments is None else frozenset(segments)
    return [load_sync(p, known) for p in sorted((directory or syncs_dir()).glob("*.yml"))]
