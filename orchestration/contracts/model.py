"""Parse ODCS v3 YAML contracts under data_contracts/ into typed objects.

One `Contract` per file (one dataset); one `Field` per property; one `Rule` per row-level check.
Rules come from four places in the contract, each enforced in exactly one place (quarantine SQL):
`required: true`, the field's logicalType (values must parse), its `logicalTypeOptions.minimum`
and its `quality` list (ODCS v3.1 `invalidValues` with a pattern or valid values). The files
validate against the ODCS JSON schema (orchestration/contracts/lint.py, `make lint`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from orchestration.paths import contracts_dir

Severity = Literal["error", "warning"]
# What a broken rule does to its row: `quarantine` (severity error), `warn` (severity warning:
# the row lands as is) or `nullify` (severity warning: the row lands with the field null; set by
# the property's customProperties `onInvalid: nullify`, see docs/contracts.md).
Action = Literal["quarantine", "warn", "nullify"]
ON_INVALID = "onInvalid"
Classification = Literal["public", "internal", "pii", "sensitive"]

# logicalType -> warehouse type used in raw (portable across DuckDB and Postgres).
WAREHOUSE_TYPES: dict[str, str] = {
    "string": "varchar",
    "integer": "bigint",
    "number": "decimal(18,2)",
    "date": "date",
    "timestamp": "timestamp",
    "boolean": "boolean",
}


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Rule:
    """One row-level rule: a row that breaks an `error` rule is quarantined with `rule_id`."""

    rule_id: str
    column: str
    kind: Literal["required", "type", "pattern", "minimum", "validValues"]
    severity: Severity
    description: str
    pattern: str | None = None
    minimum: float | None = None
    valid_values: tuple[str, ...] = ()
    nullify: bool = False  # a row breaking it lands with `column` null (severity warning)

    @property
    def action(self) -> Action:
        if self.nullify:
            return "nullify"
        return "quarantine" if self.severity == "error" else "warn"


@dataclass(frozen=True)
class Field:
    """One contract property (column)."""

    name: str
    logical_type: str
    required: bool
    primary_key: bool
    classification: Classification
    description: str = ""
    # onInvalid: nullify — a value breaking one of the field's rules becomes null, the row lands.
    nullify_invalid: bool = False

    @property
    def warehouse_type(self) -> str:
        return WAREHOUSE_TYPES[self.logical_type]

    @property
    def is_pii(self) -> bool:
        return self.classification in ("pii", "sensitive")


@dataclass(frozen=True)
class Contract:
    """A source dataset contract: `<source>__<entity>`."""

    id: str
    path: Path
    fields: tuple[Field, ...]
    rules: tuple[Rule, ...]
    duplicate_policy: Literal["keep_latest", "block"]
    ordering_column: str
    max_quarantine_share: float
    description: str = ""
    custom: dict[str, Any] = field(default_factory=dict)
    # Batch gates (docs/data-quality.md, "Batch gates"); None switches a gate off.
    max_duplicate_share: float | None = 0.05
    max_volume_drop: float | None = 0.5
    volume_history: int = 7
    volume_min_history: int = 3
    max_stale_days: float | None = 30.0
    future_tolerance_hours: float = 2.0
    max_future_share: float | None = 0.0
    future_allowed_columns: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return self.id.split("__", 1)[0]

    @property
    def entity(self) -> str:
        return self.id.split("__", 1)[1]

    @property
    def asset_key_path(self) -> list[str]:
        """Dagster asset key == dbt source key: ["crm", "contacts"]."""
        return [self.source, self.entity]

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.primary_key)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.is_pii)

    @property
    def nullify_rules(self) -> tuple[Rule, ...]:
        """Rules whose breach nulls the field instead of quarantining the row."""
        return tuple(r for r in self.rules if r.nullify)

    @property
    def future_checked_columns(self) -> tuple[str, ...]:
        """Timestamp columns that may not lie after the as_of day (+ tolerance)."""
        return tuple(
            f.name
            for f in self.fields
            if f.logical_type == "timestamp" and f.name not in self.future_allowed_columns
        )

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.id} has no field {name!r}")


def _custom(doc: dict[str, Any]) -> dict[str, Any]:
    return {p["property"]: p["value"] for p in doc.get("customProperties", []) or []}


def _share(path: Path, custom: dict[str, Any], name: str, default: float | None) -> float | None:
    """A share in [0, 1] from customProperties; an explicit null switches the gate off."""
    if name not in custom:
        return default
    value = custom[name]
    if value is None:
        return None
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ContractError(
            f"{path}: customProperties {name} must be a number, got {value!r}"
        ) from None
    if not 0.0 <= share <= 1.0:
        raise ContractError(f"{path}: customProperties {name} must be within 0..1, got {share}")
    return share


def _positive(path: Path, custom: dict[str, Any], name: str, default, kind=float, nullable=False):
    if name not in custom:
        return default
    value = custom[name]
    if value is None and nullable:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ContractError(
            f"{path}: customProperties {name} must be a number, got {value!r}"
        ) from None
    if number < 0 or (kind is int and number < 1):
        raise ContractError(f"{path}: customProperties {name} out of range: {number}")
    return number


def _on_invalid(path: Path, name: str, prop: dict[str, Any]) -> bool:
    """The property's customProperties `onInvalid`: `quarantine` (default) or `nullify`."""
    value = _custom(prop).get(ON_INVALID, "quarantine")
    if value not in ("quarantine", "nullify"):
        raise ContractError(
            f"{path}: field {name!r}: customProperties {ON_INVALID} must be quarantine|nullify, "
            f"got {value!r}"
        )
    return value == "nullify"


# ODCS v3.1 StableId: a quality rule's `id`, unique within its property's `quality` list; the
# rule id c360 reports (quarantine `_rule_id`, batch metadata) is `<column>.<id>`.
STABLE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
# logicalTypeOptions c360 enforces (as a row rule); any other option would be a promise it does
# not keep, so it is refused when the contract loads.
ENFORCED_OPTIONS = ("minimum",)


def _minimum_rule(path: Path, f: Field, prop: dict[str, Any]) -> Rule | None:
    """`logicalTypeOptions: {minimum: N}` on a number or integer field: a row rule named
    `<column>.non_negative` (N = 0), `<column>.positive` (N = 1) or `<column>.minimum`."""
    options = prop.get("logicalTypeOptions") or {}
    if not isinstance(options, dict):
        raise ContractError(f"{path}: field {f.name!r}: logicalTypeOptions must be a mapping")
    unknown = sorted(set(options) - set(ENFORCED_OPTIONS))
    if unknown:
        raise ContractError(
            f"{path}: field {f.name!r}: logicalTypeOptions {', '.join(unknown)} not enforced by "
            f"c360 (supported: {', '.join(ENFORCED_OPTIONS)}); express it as a quality rule"
        )
    if "minimum" not in options:
        return None
    if f.logical_type not in ("integer", "number"):
        raise ContractError(f"{path}: field {f.name!r}: minimum needs an integer or number field")
    try:
        minimum = float(options["minimum"])
    except (TypeError, ValueError):
        raise ContractError(
            f"{path}: field {f.name!r}: logicalTypeOptions minimum must be a number"
        ) from None
    if minimum == 0:
        name, desc = "non_negative", f"{f.name} is negative"
    else:
        name, desc = ("positive" if minimum == 1 else "minimum"), f"{f.name} is below {minimum:g}"
    severity: Severity = "warning" if f.nullify_invalid else "error"
    return Rule(
        f"{f.name}.{name}", f.name, "minimum", severity, desc, minimum=minimum,
        nullify=f.nullify_invalid,
    )  # fmt: skip


def _quality_kind(path: Path, f: Field, q: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(rule id, kind, arguments) of one `quality` entry.

    ODCS v3.1 form: `{id: format, metric: invalidValues, arguments: {pattern: ...} | {validValues:
    [...]}, mustBe: 0}` — the rule id is `<column>.<id>`. The pre-3.1 form `{id: <column>.<name>,
    rule: pattern|minimum|validValues, ...}` still loads (its id is used as written).
    """
    if "rule" in q and "metric" not in q:
        kind = q.get("rule")
        return q.get("id") or f"{f.name}.{kind}", str(kind), q
    metric, args = q.get("metric"), q.get("arguments") or {}
    if metric != "invalidValues" or not isinstance(args, dict):
        raise ContractError(
            f"{path}: field {f.name}: quality metric {metric!r} not supported (invalidValues "
            "with arguments pattern or validValues)"
        )
    kinds = [k for k in ("pattern", "validValues") if k in args]
    if len(kinds) != 1:
        raise ContractError(
            f"{path}: field {f.name}: invalidValues needs exactly one of arguments pattern, "
            "validValues"
        )
    operators = sorted(k for k in q if k.startswith("must"))
    if operators != ["mustBe"] or q["mustBe"] != 0:
        # Rules act on each row (quarantine, warn, nullify): a share or count bound is not one.
        raise ContractError(f"{path}: field {f.name}: invalidValues needs mustBe: 0 alone")
    local = q.get("id") or ("format" if kinds[0] == "pattern" else "valid_values")
    if not STABLE_ID.fullmatch(str(local)):
        raise ContractError(
            f"{path}: field {f.name}: quality id {local!r} must match {STABLE_ID.pattern} (ODCS "
            "v3.1 StableId; c360 names the rule <column>.<id>)"
        )
    return f"{f.name}.{local}", kinds[0], args


def _parse_rules(path: Path, f: Field, prop: dict[str, Any]) -> list[Rule]:
    # On an `onInvalid: nullify` field every rule but `required` is a warning that nulls the
    # value: the row lands (and is matched) without the bad value.
    nullify = f.nullify_invalid
    rules: list[Rule] = []
    if f.required:
        rules.append(
            Rule(f"{f.name}.required", f.name, "required", "error", f"{f.name} is missing")
        )
    if f.logical_type != "string":
        rules.append(
            Rule(
                f"{f.name}.type",
                f.name,
                "type",
                "warning" if nullify else "error",
                f"{f.name} is not a valid {f.logical_type}",
                nullify=nullify,
            )
        )
    minimum = _minimum_rule(path, f, prop)
    if minimum is not None:
        rules.append(minimum)
    for q in prop.get("quality", []) or []:
        rid, kind, args = _quality_kind(path, f, q)
        sev = q.get("severity", "warning" if nullify else "error")
        if sev not in ("error", "warning"):
            raise ContractError(
                f"{path}: field {f.name}: severity must be error|warning, got {sev!r}"
            )
        if nullify and sev != "warning":
            raise ContractError(
                f"{path}: field {f.name}: rule {rid} has severity {sev} but the field is "
                f"{ON_INVALID}: nullify (its rules null the value: severity warning)"
            )
        desc = q.get("description", rid)
        common = {"nullify": nullify}
        if kind == "pattern":
            rules.append(
                Rule(rid, f.name, "pattern", sev, desc, pattern=str(args["pattern"]), **common)
            )
        elif kind == "minimum":
            rules.append(
                Rule(rid, f.name, "minimum", sev, desc, minimum=float(args["value"]), **common)
            )
        elif kind == "validValues":
            vals = tuple(str(v) for v in args["validValues"])
            rules.append(Rule(rid, f.name, "validValues", sev, desc, valid_values=vals, **common))
        else:
            raise ContractError(f"{path}: field {f.name}: unknown quality rule {kind!r}")
    return rules


def load_contract(path: Path) -> Contract:
    """Parse one ODCS file; raise ContractError naming the file and field on bad input."""
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "DataContract":
        raise ContractError(f"{path}: not an ODCS DataContract (kind: DataContract missing)")
    schema = doc.get("schema") or []
    if len(schema) != 1:
        raise ContractError(f"{path}: expected exactly one schema object, found {len(schema)}")
    obj = schema[0]
    fields: list[Field] = []
    rules: list[Rule] = []
    for prop in obj.get("properties", []):
        name = prop.get("name")
        lt = prop.get("logicalType")
        if lt not in WAREHOUSE_TYPES:
            raise ContractError(f"{path}: field {name!r}: unsupported logicalType {lt!r}")
        f = Field(
            name=name,
            logical_type=lt,
            required=bool(prop.get("required", False)),
            primary_key=bool(prop.get("primaryKey", False)),
            classification=prop.get("classification", "internal"),
            description=str(prop.get("description", "")),
            nullify_invalid=_on_invalid(path, name, prop),
        )
        if f.nullify_invalid and (f.required or f.primary_key):
            raise ContractError(
                f"{path}: field {name!r}: {ON_INVALID}: nullify needs an optional, non-key field "
                "(a required or key value cannot become null)"
            )
        fields.append(f)
        rules.extend(_parse_rules(path, f, prop))
    custom = _custom(doc)
    contract = Contract(
        id=str(doc["id"]),
        path=path,
        fields=tuple(fields),
        rules=tuple(rules),
        duplicate_policy=custom.get("duplicatePolicy", "keep_latest"),
        ordering_column=custom.get("orderingColumn", "updated_at"),
        max_quarantine_share=float(custom.get("maxQuarantineShare", 0.05)),
        description=str(obj.get("description", "")),
        custom=custom,
        max_duplicate_share=_share(path, custom, "maxDuplicateShare", 0.05),
        max_volume_drop=_share(path, custom, "maxVolumeDrop", 0.5),
        volume_history=_positive(path, custom, "volumeHistory", 7, int),
        volume_min_history=_positive(path, custom, "volumeMinHistory", 3, int),
        max_stale_days=_positive(path, custom, "maxStaleDays", 30.0, nullable=True),
        future_tolerance_hours=_positive(path, custom, "futureToleranceHours", 2.0),
        max_future_share=_share(path, custom, "maxFutureShare", 0.0),
        future_allowed_columns=tuple(custom.get("futureAllowedColumns") or ()),
    )
    if not contract.primary_key:
        raise ContractError(f"{path}: no primaryKey field")
    if contract.ordering_column not in contract.column_names:
        raise ContractError(f"{path}: orderingColumn {contract.ordering_column!r} is not a field")
    if contract.field(contract.ordering_column).nullify_invalid:
        raise ContractError(
            f"{path}: field {contract.ordering_column!r}: {ON_INVALID}: nullify is not allowed on "
            "the orderingColumn (it decides which version of a key wins)"
        )
    for name in contract.future_allowed_columns:
        if name not in contract.column_names or contract.field(name).logical_type != "timestamp":
            raise ContractError(f"{path}: futureAllowedColumns: {name!r} is not a timestamp field")
    return contract


@cache
def all_source_contracts() -> tuple[Contract, ...]:
    """Every contract under data_contracts/sources/, sorted by id."""
    files = sorted((contracts_dir() / "sources").glob("*.odcs.yaml"))
    return tuple(load_contract(p) for p in files)


def source_contract(contract_id: str) -> Contract:
    for c in all_source_contracts():
        if c.id == contract_id:
            return c
    raise KeyError(f"no source contract {contract_id!r} under {contracts_dir() / 'sources'}")
