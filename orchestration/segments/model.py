"""Load and validate segment YAML (dbt_project/segments/*.yml) into `Segment` objects.

Errors name the file, the line and the field, e.g.
`dbt_project/segments/vip.yml:7: all[0].trait: 'lifetime_revenu' is not a customer_360 column`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from orchestration.paths import dbt_project_dir

SCHEMA_PATH = Path(__file__).with_name("schema.json")


class SegmentError(ValueError):
    """A segment definition is invalid; str() is `file:line: field: message`."""


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    condition: dict[str, Any]  # {"all": [...]} | {"any": [...]} | {"not": ...}
    exclude_segments: tuple[str, ...]
    channels: tuple[str, ...]
    holdout: float
    path: Path


def segments_dir() -> Path:
    return dbt_project_dir() / "segments"


@cache
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@cache
def customer_360_columns() -> frozenset[str]:
    """Published columns of customer_360 — the only identifiers a segment may reference."""
    doc = yaml.safe_load(
        (dbt_project_dir() / "models/marts/customer_360/_customer_360.yml").read_text()
    )
    model = next(m for m in doc["models"] if m["name"] == "customer_360")
    return frozenset(c["name"] for c in model["columns"])


def _line_of(node: yaml.Node, path: list[str | int]) -> int:
    """1-based line of the YAML node at `path` (nearest existing ancestor)."""
    for key in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    return node.start_mark.line + 1


def _fmt_path(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top)"


def _check_traits(cond: Any, path: list[str | int], errors: list[tuple[list, str]]) -> None:
    if not isinstance(cond, dict):
        return
    for key in ("all", "any"):
        for i, child in enumerate(cond.get(key, []) or []):
            _check_traits(child, [*path, key, i], errors)
    if "not" in cond:
        _check_traits(cond["not"], [*path, "not"], errors)
    if "trait" in cond and cond["trait"] not in customer_360_columns():
        errors.append(([*path, "trait"], f"{cond['trait']!r} is not a customer_360 column"))


def load_segment(path: Path) -> Segment:
    text = path.read_text()
    try:
        node = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SegmentError(f"{path}: not valid YAML: {exc}") from exc
    if node is None or not isinstance(doc, dict):
        raise SegmentError(f"{path}:1: (top): a segment must be a YAML mapping")
    validator = jsonschema.Draft202012Validator(_schema())
    problems: list[tuple[list, str]] = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        problems.append((list(err.absolute_path), err.message))
    _check_traits(doc, [], problems)
    if not problems and doc["name"] != path.stem:
        problems.append((["name"], f"name {doc['name']!r} must equal the file name {path.stem!r}"))
    if problems:
        lines = [f"{path}:{_line_of(node, p)}: {_fmt_path(p)}: {msg}" for p, msg in problems]
        raise SegmentError("\n".join(lines))
    cond_key = next(k for k in ("all", "any", "not") if k in doc)
    return Segment(
        name=doc["name"],
        description=doc["description"],
        condition={cond_key: doc[cond_key]},
        exclude_segments=tuple(doc.get("exclude_segments", [])),
        channels=tuple(doc.get("channels", [])),
        holdout=float(doc.get("holdout", 0.0)),
        path=path,
    )


def load_all(directory: Path | None = None) -> list[Segment]:
    """Every segment in the folder, validated together (exclusions must name known segments)."""
    folder = directory or segments_dir()
    segments = [load_segment(p) for p in sorted(folder.glob("*.yml"))]
    names = {s.name for s in segments}
    for s in segments:
        for other in s.exclude_segments:
            if other not in names:
                raise SegmentError(f"{s.path}: exclude_segments: unknown segment {other!r}")
            if other == s.name:
                raise SegmentError(f"{s.path}: exclude_segments: a segment cannot exclude itself")
    return segments
