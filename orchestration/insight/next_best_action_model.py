"""Load and validate next-best-action YAML (dbt_project/actions/*.yml) into `Action` objects.

An action is one file: who may get it (`eligibility`, a condition in the segment grammar v1,
validated and later compiled by the segment code), on which channel and consent purpose, how
much it is worth (`value`: a model from a fixed allow-list with numeric parameters, never SQL),
how long to wait before sending it again (`cooldown_days`) and its `priority` (1 = first).
`_global.yml` holds the frequency cap over all contacts.

Files load through orchestration/safe_yaml.py (size, depth, no aliases, no repeated keys) and
every string is checked as segment YAML is (no Jinja openers, no control characters, finite
numbers). Errors name the file, the line and the field, e.g.
`dbt_project/actions/win_back_push.yml:9: value.model: 'magic' is not a value model (known: …)`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from orchestration.paths import dbt_project_dir
from orchestration.safe_yaml import YamlLimitError
from orchestration.safe_yaml import load as load_yaml
from orchestration.segments.model import (
    condition_problems,
    format_path,
    line_of,
    segment_references,
    segments_dir,
    text_problems,
)

SCHEMA_PATH = Path(__file__).with_name("action.schema.json")
GLOBAL_FILE = "_global.yml"
ACTION_PREFIX = "action:"  # an action's audience name in syncs and contact_history


class ActionError(ValueError):
    """An action definition is invalid; str() is `file:line: field: message` (one per line)."""


@dataclass(frozen=True)
class ValueModel:
    """One entry of the allow-list: an expected-value expression over the customer's CLV traits
    (`clv`: marts.customer_clv) and golden record (`customers`: customer_360), with numeric
    parameters bound as literals. When a trait it needs is null the action is worth
    `fallback` (default 0) and carries the reason code `value_fallback`."""

    name: str
    description: str
    expression: str  # SQL template; {name} placeholders are the parameters
    needs: tuple[str, ...]  # columns that must be non-null, else fallback
    parameters: dict[str, tuple[float, float]]  # required parameter -> inclusive bounds


VALUE_MODELS: dict[str, ValueModel] = {
    m.name: m
    for m in (
        ValueModel(
            "fixed",
            "a fixed value per contact",
            "{amount}",
            (),
            {"amount": (0.0, 1e9)},
        ),
        ValueModel(
            "clv",
            "rate x predicted 12-month value (marts.customer_clv.predicted_value_12m)",
            "{rate} * clv.predicted_value_12m",
            ("clv.predicted_value_12m",),
            {"rate": (0.0, 1.0)},
        ),
        ValueModel(
            "p_alive_order",
            "rate x P(alive) x average order value: one more order from a customer still active",
            "{rate} * clv.p_alive * customers.average_order_value",
            ("clv.p_alive", "customers.average_order_value"),
            {"rate": (0.0, 1.0)},
        ),
        ValueModel(
            "win_back",
            "rate x (1 - P(alive)) x average order value: the order a customer who has probably "
            "lapsed would not place without the action",
            "{rate} * (1 - clv.p_alive) * customers.average_order_value",
            ("clv.p_alive", "customers.average_order_value"),
            {"rate": (0.0, 1.0)},
        ),
    )
}
OPTIONAL_PARAMETERS = {"fallback": (0.0, 1e9)}


@dataclass(frozen=True)
class Action:
    name: str
    description: str
    eligibility: dict[str, Any]  # a segment-grammar condition
    channel: str
    purpose: str
    value_model: str
    value_parameters: dict[str, float]  # the model's parameters and fallback (defaulted)
    cooldown_days: int
    priority: int
    holdout: float
    path: Path

    @property
    def audience(self) -> str:
        """The audience name a sync names (`action: <name>`) and contact_history records."""
        return ACTION_PREFIX + self.name


@dataclass(frozen=True)
class FrequencyCap:
    """At most `max_contacts` contacts (any sync, any channel) in the `within_days` nights
    before as_of; a customer at the cap gets no action that night."""

    max_contacts: int
    within_days: int


@dataclass(frozen=True)
class ActionRules:
    """dbt_project/actions/_global.yml."""

    frequency_cap: FrequencyCap | None
    path: Path | None


def actions_dir() -> Path:
    return dbt_project_dir() / "actions"


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def _consent_purposes() -> tuple[str, ...]:
    from orchestration.activation.sync_definition import consent_purposes

    return consent_purposes()


def _fail(path: Path, node: yaml.Node | None, problems: list[tuple[list, str]]) -> None:
    if problems:
        raise ActionError(
            "\n".join(
                f"{path}:{line_of(node, p) if node is not None else 1}: {format_path(p)}: {m}"
                for p, m in problems
            )
        )


def _load_document(path: Path, what: str) -> tuple[dict[str, Any], yaml.Node | None]:
    try:
        doc, node = load_yaml(path)
    except YamlLimitError as exc:
        raise ActionError(str(exc)) from None
    if doc is None and what == "global rules":
        return {}, None
    if node is None or not isinstance(doc, dict):
        raise ActionError(f"{path}:1: (top): {what} must be a YAML mapping")
    _fail(path, node, text_problems(doc))
    return doc, node


def _value_problems(value: dict[str, Any]) -> list[tuple[list, str]]:
    model = VALUE_MODELS.get(value["model"])
    if model is None:
        known = ", ".join(VALUE_MODELS)
        return [(["value", "model"], f"{value['model']!r} is not a value model (known: {known})")]
    problems: list[tuple[list, str]] = []
    allowed = {**model.parameters, **OPTIONAL_PARAMETERS}
    for key, number in value.items():
        if key == "model":
            continue
        if key not in allowed:
            problems.append(
                (
                    ["value", key],
                    f"not a parameter of {model.name!r} (parameters: {', '.join(allowed)})",
                )
            )
            continue
        low, high = allowed[key]
        if not (math.isfinite(number) and low <= number <= high):
            problems.append((["value", key], f"must be a number from {low:g} to {high:g}"))
    for key in model.parameters:
        if key not in value:
            problems.append((["value"], f"value model {model.name!r} needs {key!r}"))
    return problems


def load_action(path: Path, segments: frozenset[str] | None = None) -> Action:
    """The action in `path`, validated; `segments`: segment names its eligibility may refer to
    (default: the segments defined in dbt_project/segments/)."""
    doc, node = _load_document(path, "an action")
    problems = [
        (list(e.absolute_path), e.message)
        for e in sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    ]
    if "eligibility" in doc:
        problems += condition_problems(doc["eligibility"], ["eligibility"])
    if not problems:
        known = segments if segments is not None else _defined_segments()
        for name in sorted(segment_references(doc["eligibility"]) - known):
            problems.append((["eligibility"], f"segment {name!r} is not a defined segment"))
        if doc["purpose"] not in _consent_purposes():
            problems.append(
                (
                    ["purpose"],
                    f"{doc['purpose']!r} not one of {_consent_purposes()} "
                    "(the purposes consent is recorded for)",
                )
            )
        problems += _value_problems(doc["value"])
        if doc["name"] != path.stem:
            problems.append(
                (["name"], f"name {doc['name']!r} must equal the file name {path.stem!r}")
            )
    _fail(path, node, problems)
    value = doc["value"]
    parameters = {k: float(v) for k, v in value.items() if k != "model"}
    parameters.setdefault("fallback", 0.0)
    return Action(
        name=doc["name"],
        description=doc["description"],
        eligibility=doc["eligibility"],
        channel=doc["channel"],
        purpose=doc["purpose"],
        value_model=value["model"],
        value_parameters=parameters,
        cooldown_days=int(doc["cooldown_days"]),
        priority=int(doc["priority"]),
        holdout=float(doc.get("holdout", 0.0)),
        path=path,
    )


def _defined_segments() -> frozenset[str]:
    return frozenset(p.stem for p in segments_dir().glob("*.yml") if not p.name.startswith("_"))


def load_rules(directory: Path | None = None) -> ActionRules:
    """The global action rules (none when the file is absent), validated."""
    path = (directory or actions_dir()) / GLOBAL_FILE
    if not path.exists():
        return ActionRules(None, None)
    doc, node = _load_document(path, "global rules")
    problems: list[tuple[list, str]] = [
        ([key], "unknown field (known: frequency_cap)") for key in doc if key != "frequency_cap"
    ]
    cap = doc.get("frequency_cap")
    frequency_cap = None
    if cap is not None:
        if not isinstance(cap, dict):
            problems.append((["frequency_cap"], "a mapping of max_contacts and within_days"))
        else:
            for key in cap:
                if key not in ("max_contacts", "within_days"):
                    problems.append((["frequency_cap", key], "unknown field"))
            for key, high in (("max_contacts", 1000), ("within_days", 3650)):
                number = cap.get(key)
                if (
                    isinstance(number, bool)
                    or not isinstance(number, int)
                    or not 1 <= number <= high
                ):
                    problems.append((["frequency_cap", key], f"an integer from 1 to {high}"))
            if not problems:
                frequency_cap = FrequencyCap(cap["max_contacts"], cap["within_days"])
    _fail(path, node, problems)
    return ActionRules(frequency_cap, path)


def load_all(directory: Path | None = None, segments: frozenset[str] | None = None) -> list[Action]:
    """Every action in the folder (files starting with _ hold global rules), validated."""
    folder = directory or actions_dir()
    return [
        load_action(p, segments) for p in sorted(folder.glob("*.yml")) if not p.name.startswith("_")
    ]


def defined_actions(directory: Path | None = None) -> frozenset[str]:
    """Names of the actions defined in the folder (an action's name is its file's)."""
    folder = directory or actions_dir()
    return frozenset(p.stem for p in folder.glob("*.yml") if not p.name.startswith("_"))


def sync_audience(doc: dict[str, Any], path: Path) -> str:
    """The audience name of a sync YAML that names an action (`action: <name>`), checked: the
    action is defined and valid, and the sync's channel and purpose are the action's (consent
    is checked for those). Raises SyncDefinitionError naming the sync file and field."""
    from orchestration.activation.sync_definition import SyncDefinitionError

    if "segment" in doc:
        raise SyncDefinitionError(f"{path}: action: give a segment or an action, not both")
    name = doc["action"]
    known = defined_actions()
    if name not in known:
        raise SyncDefinitionError(
            f"{path}: action: {name!r} is not a defined action "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    try:
        action = load_action(actions_dir() / f"{name}.yml")
    except ActionError as exc:
        raise SyncDefinitionError(f"{path}: action: {name!r} is invalid: {exc}") from None
    for key, wanted, given in (
        ("channel", action.channel, doc.get("channel")),
        ("purpose", action.purpose, doc.get("purpose", "marketing")),
    ):
        if given != wanted:
            raise SyncDefinitionError(
                f"{path}: {key}: {given!r}, but action {name!r} is sent on {key} {wanted!r}"
            )
    return action.audience
