"""Load and validate segment YAML (dbt_project/segments/*.yml) into `Segment` objects.

Errors name the file, the line and the field, e.g.
`dbt_project/segments/vip.yml:7: all[0].trait: 'lifetime_revenu' is not a customer_360 column`.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from orchestration.contracts.customer_360 import column_names
from orchestration.paths import dbt_project_dir
from orchestration.safe_yaml import YamlLimitError
from orchestration.safe_yaml import load as load_yaml

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
def _top_validator() -> jsonschema.Draft202012Validator:
    """The committed schema with conditions left to _condition_problems (precise messages)."""
    schema = json.loads(json.dumps(_schema()))
    schema["$defs"]["condition"] = {}
    return jsonschema.Draft202012Validator(schema)


def customer_360_columns() -> frozenset[str]:
    """Published columns of customer_360 (its contract's and its traits') — the only identifiers
    a segment may reference."""
    return column_names()


def line_of(node: yaml.Node, path: list[str | int]) -> int:
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


def format_path(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top)"


CONDITION_KINDS = ("all", "any", "not", "segment", "trait", "event", "orders", "eligible")
OPERATORS = (
    "eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_null", "is_not_null",
    "contains", "starts_with",
)  # fmt: skip


@cache
def _sub_validator(definition: str) -> jsonschema.Draft202012Validator:
    """Validator for one $defs entry of the committed schema (refs resolve inside it)."""
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/$defs/{definition}", "$defs": _schema()["$defs"]}
    )


def _operator_problems(
    cond: dict[str, Any], operand: str, path: list[str | int], problems: list[tuple[list, str]]
) -> None:
    ops = [k for k in cond if k != operand]
    unknown = [k for k in ops if k not in OPERATORS]
    if unknown:
        problems.append(([*path, unknown[0]], f"unknown operator (known: {', '.join(OPERATORS)})"))
    elif len(ops) != 1:
        problems.append((path, f"give exactly one operator next to {operand!r} (found {len(ops)})"))


def _condition_problems(cond: Any, path: list[str | int], problems: list[tuple[list, str]]) -> None:
    """Check one condition node against grammar v1, naming the field of the first problem in
    each node (the schema's oneOf alone would only say 'not valid under any of the schemas')."""
    if not isinstance(cond, dict):
        problems.append((path, "a condition must be a mapping"))
        return
    kinds = [k for k in CONDITION_KINDS if k in cond]
    if len(kinds) != 1:
        found = ", ".join(kinds) or ", ".join(map(str, cond)) or "nothing"
        problems.append(
            (path, f"a condition needs exactly one of {', '.join(CONDITION_KINDS)} (found {found})")
        )
        return
    kind = kinds[0]
    if kind not in ("trait",) and len(cond) > 1:
        extra = next(k for k in cond if k != kind)
        problems.append(([*path, extra], f"unexpected next to {kind!r}"))
        return
    if kind in ("all", "any"):
        children = cond[kind]
        if not isinstance(children, list) or not children:
            problems.append(([*path, kind], "a non-empty list of conditions is required"))
            return
        for i, child in enumerate(children):
            _condition_problems(child, [*path, kind, i], problems)
    elif kind == "not":
        _condition_problems(cond["not"], [*path, "not"], problems)
    elif kind == "trait":
        before = len(problems)
        _operator_problems(cond, "trait", path, problems)
        errors = list(_sub_validator("trait_condition").iter_errors(cond))
        if len(problems) > before:
            return
        if errors:
            err = min(errors, key=lambda e: len(list(e.absolute_path)))
            problems.append(([*path, *err.absolute_path], err.message))
        elif cond["trait"] not in customer_360_columns():
            problems.append(([*path, "trait"], f"{cond['trait']!r} is not a customer_360 column"))
    else:  # segment, event, orders, eligible
        definition = {
            "segment": "segment_name", "event": "event", "orders": "orders", "eligible": "channel"
        }[kind]  # fmt: skip
        value = cond[kind]
        if kind == "event" and isinstance(value, dict):
            for i, flt in enumerate(value.get("where") or []):
                if isinstance(flt, dict):
                    _operator_problems(flt, "property", [*path, kind, "where", i], problems)
        errors = list(_sub_validator(definition).iter_errors(value))
        if errors:
            err = min(errors, key=lambda e: len(list(e.absolute_path)))
            message = err.message
            if err.validator == "not" and isinstance(value, dict):
                message = (
                    "give within_last_days or days_ago_between, not both"
                    if "days_ago_between" in value and "within_last_days" in value
                    else "give count or occurrence, not both"
                )
            problems.append(([*path, kind, *err.absolute_path], message))
        if kind == "event" and isinstance(value, dict):
            window = value.get("days_ago_between")
            if isinstance(window, list) and len(window) == 2 and window[0] > window[1]:
                problems.append(([*path, kind, "days_ago_between"], "[N, M] needs N <= M"))
        if kind == "orders" and isinstance(value, dict):
            window = value.get("days_ago_between")
            if isinstance(window, list) and len(window) == 2 and window[0] > window[1]:
                problems.append(([*path, kind, "days_ago_between"], "[N, M] needs N <= M"))


def condition_problems(cond: Any, path: list[str | int]) -> list[tuple[list, str]]:
    """Problems of one condition tree (grammar v1) by path, for other YAML that embeds a
    segment condition (next-best-action eligibility)."""
    problems: list[tuple[list, str]] = []
    _condition_problems(cond, path, problems)
    return problems


def segment_references(cond: Any) -> set[str]:
    """Names of the segments a condition tree refers to ({segment: name} nodes)."""
    if not isinstance(cond, dict):
        return set()
    refs = {cond["segment"]} if isinstance(cond.get("segment"), str) else set()
    for key in ("all", "any"):
        for child in cond.get(key) or []:
            refs |= segment_references(child)
    if "not" in cond:
        refs |= segment_references(cond["not"])
    return refs


# Segment YAML is data: every string in it ends up in generated SQL (as a quoted literal) or in a
# SQL comment, and dbt renders the generated file as Jinja. So no string may open a Jinja tag, and
# only the description may span lines (the compiler writes each of its lines as its own comment).
JINJA_OPENERS = ("{{", "{%", "{#")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MULTILINE_FIELDS = frozenset({"description"})


def text_problem(value: str, multiline: bool = False) -> str | None:
    """Why a YAML string may not reach generated SQL or a message, or None when it may."""
    opener = next((o for o in JINJA_OPENERS if o in value), None)
    if opener is not None:
        return f"{opener!r} is not allowed: values are data, never templates"
    for char in value:
        allowed = multiline and char in "\t\n\r"
        category = unicodedata.category(char)
        if not allowed and (category in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS):
            where = "" if multiline else " (a single line is required)"
            return f"control character U+{ord(char):04X} is not allowed{where}"
    return None


def text_problems(
    value: Any, path: list[str | int] | None = None, multiline: frozenset[str] = MULTILINE_FIELDS
) -> list[tuple[list[str | int], str]]:
    """Every string (key or value) in a loaded YAML document that may not be used, and every
    number that is not finite (.nan, .inf would compile to SQL names), by path. Top-level fields
    named in `multiline` may span lines."""
    path = path or []
    problems: list[tuple[list[str | int], str]] = []
    if isinstance(value, float) and not math.isfinite(value):
        problems.append((path, f"{value!r} is not allowed: give a finite number"))
    elif isinstance(value, str):
        problem = text_problem(value, multiline=len(path) == 1 and path[0] in multiline)
        if problem:
            problems.append((path, problem))
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (problem := text_problem(key)):
                problems.append(([*path, key], f"field name: {problem}"))
            problems.extend(text_problems(item, [*path, key], multiline))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems.extend(text_problems(item, [*path, i], multiline))
    return problems


def _raise_text_problems(path: Path, node: yaml.Node, doc: Any) -> None:
    problems = text_problems(doc)
    if problems:
        lines = [f"{path}:{line_of(node, p)}: {format_path(p)}: {msg}" for p, msg in problems]
        raise SegmentError("\n".join(lines))


def _load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree, within the size, depth and no-alias limits."""
    try:
        return load_yaml(path)
    except YamlLimitError as exc:
        raise SegmentError(str(exc)) from None


def load_segment(path: Path) -> Segment:
    doc, node = _load_yaml(path)
    if node is None or not isinstance(doc, dict):
        raise SegmentError(f"{path}:1: (top): a segment must be a YAML mapping")
    _raise_text_problems(path, node, doc)
    problems: list[tuple[list, str]] = []
    for err in sorted(_top_validator().iter_errors(doc), key=lambda e: list(e.absolute_path)):
        problems.append((list(err.absolute_path), err.message))
    for kind in ("all", "any", "not"):
        if kind in doc:
            _condition_problems({kind: doc[kind]}, [], problems)
    if not problems and doc["name"] != path.stem:
        problems.append((["name"], f"name {doc['name']!r} must equal the file name {path.stem!r}"))
    if problems:
        lines = [f"{path}:{line_of(node, p)}: {format_path(p)}: {msg}" for p, msg in problems]
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


@dataclass(frozen=True)
class GlobalRules:
    """dbt_project/segments/_global.yml: a condition excluding customers from every segment, and
    mutually exclusive priority groups (group -> segment names, highest priority first)."""

    exclude: dict[str, Any] | None
    priority_groups: dict[str, tuple[str, ...]]
    path: Path | None


GLOBAL_FILE = "_global.yml"
GLOBAL_SCHEMA_PATH = Path(__file__).with_name("global.schema.json")


def load_global(directory: Path | None = None) -> GlobalRules:
    """The global rules (none when the file is absent), validated: errors name file, line, field."""
    path = (directory or segments_dir()) / GLOBAL_FILE
    if not path.exists():
        return GlobalRules(None, {}, None)
    doc, node = _load_yaml(path)
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise SegmentError(f"{path}:1: (top): must be a YAML mapping")
    _raise_text_problems(path, node, doc)
    schema = json.loads(GLOBAL_SCHEMA_PATH.read_text())
    schema["properties"]["exclude"] = {}  # conditions get the precise checker below
    problems: list[tuple[list, str]] = [
        (list(e.absolute_path), e.message)
        for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)
    ]
    if "exclude" in doc:
        _condition_problems(doc["exclude"], ["exclude"], problems)
        if segment_references(doc["exclude"]):
            problems.append((["exclude"], "the global exclusion cannot refer to segments"))
    if problems:
        lines = [
            f"{path}:{line_of(node, p) if node else 1}: {format_path(p)}: {m}" for p, m in problems
        ]
        raise SegmentError("\n".join(lines))
    groups = {g: tuple(names) for g, names in (doc.get("priority_groups") or {}).items()}
    return GlobalRules(doc.get("exclude"), groups, path)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in segment references (a -> b -> a), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for other in sorted(graph.get(name, ())):
            if state.get(other) == 1:
                return [*stack[stack.index(other) :], other]
            if other not in state and (found := visit(other)):
                return found
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def load_all(directory: Path | None = None) -> list[Segment]:
    """Every segment in the folder, validated together: references and exclusions must name
    known segments, without cycles; priority groups must name known segments, each in at most
    one group. Files starting with _ hold global rules (load_global), not segments."""
    folder = directory or segments_dir()
    segments = [load_segment(p) for p in sorted(folder.glob("*.yml")) if not p.name.startswith("_")]
    by_name = {s.name: s for s in segments}
    graph: dict[str, set[str]] = {}
    for s in segments:
        for other in s.exclude_segments:
            if other not in by_name:
                raise SegmentError(f"{s.path}: exclude_segments: unknown segment {other!r}")
            if other == s.name:
                raise SegmentError(f"{s.path}: exclude_segments: a segment cannot exclude itself")
        for other in sorted(segment_references(s.condition)):
            if other not in by_name:
                raise SegmentError(f"{s.path}: segment: unknown segment {other!r}")
        graph[s.name] = set(s.exclude_segments) | segment_references(s.condition)
    if cycle := _cycle(graph):
        first = by_name[cycle[0]]
        raise SegmentError(
            f"{first.path}: segments refer to each other in a cycle: {' -> '.join(cycle)}"
        )
    rules = load_global(folder)
    grouped: dict[str, str] = {}
    for group, names in rules.priority_groups.items():
        for name in names:
            if name not in by_name:
                raise SegmentError(
                    f"{rules.path}: priority_groups.{group}: unknown segment {name!r}"
                )
            if name in grouped:
                raise SegmentError(
                    f"{rules.path}: priority_groups.{group}: {name!r} is already in group {grouped[name]!r}"
                )
            grouped[name] = group
    return segments
