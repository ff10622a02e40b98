"""The identity-resolution config: `vars.identity` in dbt_project/dbt_project.yml.

One YAML block sets identifier types (priority, max source records sharing one value, whether a
shared value must also agree on first name, at most N per customer optionally within a window of
days), the junk blocklist (exact values and whole-value regexes) and probabilistic matching (on
or off, comparisons, blocking, training, threshold). dbt reads it (int_identity__dropped_links,
int_identity__limit_drops, int_identity__edges), the assets identity_state/identity_model and
identity/probabilistic_links read `probabilistic`; this module validates it with errors that name
the field, and lets tests and tools use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from orchestration.dbt_vars import project_vars
from orchestration.identity.health import Bounds

IDENTIFIER_TYPES = (
    "crm_contact_id", "shop_customer_id", "loyalty_member_id", "email", "phone", "name_address",
    "anonymous_id",
)  # fmt: skip
IDENTIFIER_SETTINGS = (
    "priority", "max_records_per_value", "require_matching_first_name",
    "require_matching_birth_date", "max_per_customer", "within_days",
)  # fmt: skip

# The default cap. A record in a block of n is paired with n - 1 others by that rule; with the
# cap it is paired with at most 199, so a rule costs at most ~100 scored pairs per record, a
# fixed cost per record whatever the data's size (Splink scores ~1M pairs per core-second, so
# ~0.1 ms per record and rule). One person's records sharing a key are a handful; a block of
# hundreds is mostly different people who share a common value, which is weak evidence.
DEFAULT_MAX_BLOCK_SIZE = 200


# The record columns the probabilistic model can compare or block on (orchestration/identity/
# probabilistic.py CANDIDATES_SQL builds them; names and address parts folded like the keys).
PROBABILISTIC_COLUMNS = (
    "first_name", "last_name", "date_of_birth", "street_number", "street", "city", "postal_code",
    "email", "phone",
)  # fmt: skip
# A comparison is named by its column, or `address` (kind address: the four address columns).
COMPARISON_NAMES = (*PROBABILISTIC_COLUMNS, "address")
# Blocking-only keys derived from email and phone (a typo keeps them).
BLOCKING_KEYS = ("phone_stem", "email_domain", "email_tail")
# Comparison kinds and their levels (probabilistic._levels() builds them; docs/identity.md).
# `address` compares street number, street, locality and postcode together (one comparison: a
# person who moved changes all four at once, so four comparisons would count one fact four times).
COMPARISON_KINDS = ("name", "date", "exact", "string", "postcode", "contact", "address")
ADDRESS_COLUMNS = ("street_number", "street", "city", "postal_code")


@dataclass(frozen=True)
class Comparison:
    """One compared column: its kind and, for a name, the column a swapped name is found in."""

    column: str
    kind: str
    swapped_with: str | None = None
    # a nickname level (given_names.py): William and Bill are one name written two ways
    nicknames: bool = False


@dataclass(frozen=True)
class BlockingRule:
    """Pairs agreeing exactly on `columns` are compared; `swapped`: first_name of one record equal
    to last_name of the other and the other way round (a given and family name swapped)."""

    columns: tuple[str, ...]
    swapped: bool = False

    @property
    def label(self) -> str:
        return ("swapped " if self.swapped else "") + " + ".join(self.columns)


DEFAULT_COMPARISONS = (
    Comparison("first_name", "name", "last_name", nicknames=True),
    Comparison("last_name", "name", "first_name"),
    Comparison("date_of_birth", "date"),
    Comparison("address", "address"),
    Comparison("email", "contact"),
    Comparison("phone", "contact"),
)
DEFAULT_BLOCKING = (
    BlockingRule(("first_name", "last_name")),
    BlockingRule(("date_of_birth",)),
    BlockingRule(("postal_code", "street")),
    BlockingRule(("last_name", "postal_code")),
    BlockingRule(("first_name", "postal_code")),
    BlockingRule(("street_number", "street", "city")),
    BlockingRule(("first_name", "last_name"), swapped=True),
    BlockingRule(("phone_stem",)),
    BlockingRule(("email_domain", "email_tail")),
)
DEFAULT_TRAINING_BLOCKING = (
    BlockingRule(("date_of_birth",)),
    BlockingRule(("first_name", "last_name")),
)
DEFAULT_DETERMINISTIC_RULES = (
    BlockingRule(("first_name", "last_name", "date_of_birth")),
    BlockingRule(("first_name", "last_name", "street", "postal_code")),
    BlockingRule(("email",)),
    BlockingRule(("phone",)),
)


@dataclass(frozen=True)
class Probabilistic:
    """Probabilistic matching: on or off, the model's comparisons and blocking rules, how it is
    trained and the match probability a pair needs to link (None: chosen from the fitted model,
    see orchestration/identity/training.py choose_threshold)."""

    enabled: bool = False
    threshold: float | None = None
    min_precision: float = 0.999
    retrain_after_days: int = 7
    prior_recall: float = 0.8
    comparisons: tuple[Comparison, ...] = DEFAULT_COMPARISONS
    blocking: tuple[BlockingRule, ...] = DEFAULT_BLOCKING
    training_blocking: tuple[BlockingRule, ...] = DEFAULT_TRAINING_BLOCKING
    deterministic_rules: tuple[BlockingRule, ...] = DEFAULT_DETERMINISTIC_RULES
    # a block of more records than this is skipped by its rule (orchestration/identity/blocking.py)
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE
    # the fit reads a sample of at most this many records (orchestration/identity/training.py)
    training_max_records: int = 250_000

    def model_settings(self) -> dict[str, Any]:
        """What a trained model depends on (a change retrains it)."""
        return {
            "comparisons": [
                [c.column, c.kind, c.swapped_with] + (["nicknames"] if c.nicknames else [])
                for c in self.comparisons
            ],
            "blocking": [[list(b.columns), b.swapped] for b in self.blocking],
            "training_blocking": [[list(b.columns), b.swapped] for b in self.training_blocking],
            "deterministic_rules": [[list(b.columns), b.swapped] for b in self.deterministic_rules],
            "prior_recall": self.prior_recall,
            "min_precision": self.min_precision,
            "max_block_size": self.max_block_size,
            "training_max_records": self.training_max_records,
        }


class IdentityConfigError(ValueError):
    """The identity config is invalid; the message names the field."""


@dataclass(frozen=True)
class BlocklistEntry:
    identifier_type: str
    exact: str | None
    regex: str | None

    def matches(self, value: str) -> bool:
        if self.exact is not None:
            return value == self.exact
        assert self.regex is not None
        return re.fullmatch(self.regex, value) is not None


@dataclass(frozen=True)
class IdentityConfig:
    priorities: dict[str, int]
    max_records_per_value: dict[str, int]
    blocklist: tuple[BlocklistEntry, ...]
    # types whose shared values link only records with agreeing first names (household guard)
    name_guarded: frozenset[str] = frozenset()
    name_max_edit_distance: int = 1
    circuit_breaker: Bounds = field(default_factory=Bounds)
    # type -> (at most this many per customer, counting only those seen within N days or all)
    max_per_customer: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    probabilistic: Probabilistic = field(default_factory=Probabilistic)
    # source entities holding within-source duplicates (their permanent id's limit is lifted)
    sources_with_duplicates: tuple[str, ...] = ()
    max_refused_link_share: float = 0.1  # DEFAULT_MAX_REFUSED_LINK_SHARE

    def is_blocked(self, identifier_type: str, value: str) -> bool:
        return any(
            e.identifier_type == identifier_type and e.matches(value) for e in self.blocklist
        )


# Source entities whose records are people, each with its permanent id type. One listed under
# `sources_with_duplicates` holds several records of one person (a CRM with duplicate contacts):
# its records may merge, i.e. that type's max_per_customer is lifted; every other limit stays.
PERSON_SOURCES = {
    "crm__contacts": "crm_contact_id",
    "shop__customers": "shop_customer_id",
    "loyalty__members": "loyalty_member_id",
}
# Links refused (by any limit or guard) above this share of candidate links: the asset check
# identity_state/graph_health:refused_links_share warns, naming the limits (docs/identity.md).
DEFAULT_MAX_REFUSED_LINK_SHARE = 0.1


def _known_keys(raw: dict[str, Any], where: str, known: tuple[str, ...]) -> None:
    if unknown := [k for k in raw if k not in known]:
        raise IdentityConfigError(
            f"{where}.{unknown[0]}: unknown setting (known: {', '.join(known)})"
        )


def _all_known(values: list[Any], where: str, known: Sequence[str], noun: str) -> None:
    """Refuse the first of `values` that is not one of `known`; `noun` names one value."""
    for value in values:
        if value not in known:
            raise IdentityConfigError(
                f"{where}: unknown {noun} {value!r} (known: {', '.join(known)})"
            )


def _distinct_known(
    values: list[Any], where: str, known: tuple[str, ...], noun: str
) -> tuple[str, ...]:
    """`values` as a tuple when each is one of `known` and none is listed twice; `noun` names one
    value in the error."""
    _all_known(values, where, known, noun)
    if len(set(values)) != len(values):
        raise IdentityConfigError(f"{where}: a {noun} is listed twice")
    return tuple(values)


def _sources_with_duplicates(raw: Any, where: str) -> tuple[str, ...]:
    """The source entities declared to hold several records of one person (known, once each)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise IdentityConfigError(
            f"{where}: a list of source entities is required ({', '.join(PERSON_SOURCES)})"
        )
    return _distinct_known(raw, where, tuple(PERSON_SOURCES), "source entity")


def parse(raw: dict[str, Any], where: str = "vars.identity") -> IdentityConfig:
    if not isinstance(raw, dict):
        raise IdentityConfigError(f"{where}: must be a mapping")
    _known_keys(raw, where, ("identifiers", "blocklist", "name_max_edit_distance",
                             "phone_default_region", "circuit_breaker", "probabilistic",
                             "sources_with_duplicates", "max_refused_link_share"))  # fmt: skip
    probabilistic = _probabilistic(raw.get("probabilistic"), f"{where}.probabilistic")
    breaker = raw.get("circuit_breaker") or {}
    _known_keys(breaker, f"{where}.circuit_breaker", ("max_cluster_records", "max_merge_rate"))
    if (
        not isinstance(breaker.get("max_cluster_records", 50), int)
        or breaker.get("max_cluster_records", 50) < 2
    ):
        raise IdentityConfigError(
            f"{where}.circuit_breaker.max_cluster_records: an integer >= 2 is required"
        )
    rate = breaker.get("max_merge_rate", 0.02)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise IdentityConfigError(
            f"{where}.circuit_breaker.max_merge_rate: a share between 0 and 1 is required"
        )
    priorities: dict[str, int] = {}
    limits: dict[str, int] = {}
    per_customer: dict[str, tuple[int, int | None]] = {}
    guarded: set[str] = set()
    for name, settings in (raw.get("identifiers") or {}).items():
        if name not in IDENTIFIER_TYPES:
            raise IdentityConfigError(
                f"{where}.identifiers.{name}: unknown identifier type (known: {', '.join(IDENTIFIER_TYPES)})"
            )
        if not isinstance(settings, dict):
            raise IdentityConfigError(f"{where}.identifiers.{name}: must be a mapping")
        _known_keys(settings, f"{where}.identifiers.{name}", IDENTIFIER_SETTINGS)
        priority = settings.get("priority")
        if not isinstance(priority, int) or priority < 1:
            raise IdentityConfigError(
                f"{where}.identifiers.{name}.priority: a positive integer is required"
            )
        priorities[name] = priority
        if "max_records_per_value" in settings:
            limit = settings["max_records_per_value"]
            if not isinstance(limit, int) or limit < 2:
                raise IdentityConfigError(
                    f"{where}.identifiers.{name}.max_records_per_value: an integer >= 2 is required"
                )
            limits[name] = limit
        guard = settings.get("require_matching_first_name", False)
        if not isinstance(guard, bool):
            raise IdentityConfigError(
                f"{where}.identifiers.{name}.require_matching_first_name: true or false is required"
            )
        if guard:
            guarded.add(name)
        if not isinstance(settings.get("require_matching_birth_date", False), bool):
            raise IdentityConfigError(
                f"{where}.identifiers.{name}.require_matching_birth_date: true or false is required"
            )
        if "max_per_customer" in settings:
            most = settings["max_per_customer"]
            if not isinstance(most, int) or isinstance(most, bool) or most < 1:
                raise IdentityConfigError(
                    f"{where}.identifiers.{name}.max_per_customer: an integer >= 1 is required"
                )
            days = settings.get("within_days")
            if days is not None and (
                not isinstance(days, int) or isinstance(days, bool) or days < 1
            ):
                raise IdentityConfigError(
                    f"{where}.identifiers.{name}.within_days: a number of days >= 1 is required"
                )
            per_customer[name] = (most, days)
        elif "within_days" in settings:
            raise IdentityConfigError(
                f"{where}.identifiers.{name}.within_days: only with max_per_customer"
            )
    duplicates = _sources_with_duplicates(
        raw.get("sources_with_duplicates"), f"{where}.sources_with_duplicates"
    )
    for source in duplicates:
        per_customer.pop(PERSON_SOURCES[source], None)
    refused_share = raw.get("max_refused_link_share", DEFAULT_MAX_REFUSED_LINK_SHARE)
    if (
        isinstance(refused_share, bool)
        or not isinstance(refused_share, int | float)
        or not 0 <= refused_share <= 1
    ):
        raise IdentityConfigError(
            f"{where}.max_refused_link_share: a share between 0 and 1 is required"
        )
    distance = raw.get("name_max_edit_distance", 1)
    if not isinstance(distance, int) or isinstance(distance, bool) or distance < 0:
        raise IdentityConfigError(f"{where}.name_max_edit_distance: an integer >= 0 is required")
    region = raw.get("phone_default_region", "US")
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise IdentityConfigError(
            f"{where}.phone_default_region: {region!r} is not an ISO region libphonenumber knows"
        )
    entries = []
    for i, entry in enumerate(raw.get("blocklist") or []):
        field = f"{where}.blocklist[{i}]"
        if entry.get("type") not in IDENTIFIER_TYPES:
            raise IdentityConfigError(
                f"{field}.type: unknown identifier type {entry.get('type')!r}"
            )
        if ("exact" in entry) == ("regex" in entry):
            raise IdentityConfigError(f"{field}: give exactly one of exact or regex")
        if "regex" in entry:
            try:
                re.compile(entry["regex"])
            except re.error as exc:
                raise IdentityConfigError(f"{field}.regex: {exc}") from exc
        entries.append(BlocklistEntry(entry["type"], entry.get("exact"), entry.get("regex")))
    return IdentityConfig(
        priorities,
        limits,
        tuple(entries),
        frozenset(guarded),
        distance,
        Bounds.from_config(breaker),
        per_customer,
        probabilistic,
        sources_with_duplicates=duplicates,
        max_refused_link_share=float(refused_share),
    )


PROBABILISTIC_SETTINGS = (
    "enabled", "threshold", "min_precision", "retrain_after_days", "prior_recall", "comparisons",
    "blocking", "training_blocking", "deterministic_rules", "max_block_size",
    "training_max_records",
)  # fmt: skip


def _share(raw: Any, field: str, default: float) -> float:
    value = default if raw is None else raw
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise IdentityConfigError(f"{field}: a number above 0 and below 1 is required")
    return float(value)


def _comparisons(raw: Any, where: str) -> tuple[Comparison, ...]:
    if raw is None:
        return DEFAULT_COMPARISONS
    if not isinstance(raw, dict) or not raw:
        raise IdentityConfigError(
            f"{where}: a mapping of column: {{kind: ...}} is required "
            f"(columns: {', '.join(COMPARISON_NAMES)})"
        )
    out = []
    for column, spec in raw.items():
        field = f"{where}.{column}"
        if spec is None:  # removed by a C360_DBT_VARS override (null)
            continue
        if column not in COMPARISON_NAMES:
            raise IdentityConfigError(
                f"{field}: unknown column (known: {', '.join(COMPARISON_NAMES)})"
            )
        if not isinstance(spec, dict):
            raise IdentityConfigError(f"{field}: must be a mapping (kind, swapped_with)")
        _known_keys(spec, field, ("kind", "swapped_with", "nicknames"))
        kind = spec.get("kind")
        if kind not in COMPARISON_KINDS:
            raise IdentityConfigError(
                f"{field}.kind: {kind!r} is not a comparison kind (known: {', '.join(COMPARISON_KINDS)})"
            )
        if (kind == "address") != (column == "address"):
            raise IdentityConfigError(
                f"{field}.kind: the address comparison is kind address, and only it"
            )
        swapped = spec.get("swapped_with")
        if swapped is not None and (
            kind != "name" or swapped not in PROBABILISTIC_COLUMNS or swapped == column
        ):
            raise IdentityConfigError(
                f"{field}.swapped_with: only a name comparison takes it, naming another column"
            )
        nicknames = spec.get("nicknames", False)
        if not isinstance(nicknames, bool) or (
            nicknames and (kind != "name" or column not in ("first_name", "last_name"))
        ):
            raise IdentityConfigError(
                f"{field}.nicknames: true or false, and only for a name comparison of "
                "first_name or last_name"
            )
        out.append(Comparison(column, kind, swapped, nicknames))
    if not out:
        raise IdentityConfigError(f"{where}: at least one comparison is required")
    return tuple(out)


def _rules(raw: Any, where: str, default: tuple[BlockingRule, ...]) -> tuple[BlockingRule, ...]:
    if raw is None:
        return default
    if not isinstance(raw, list) or not raw:
        raise IdentityConfigError(
            f"{where}: a non-empty list of rules is required, each a list of columns "
            "([postal_code, street]) or {swapped: [first_name, last_name]}"
        )
    known = PROBABILISTIC_COLUMNS + BLOCKING_KEYS
    out = []
    for i, rule in enumerate(raw):
        field = f"{where}[{i}]"
        swapped = isinstance(rule, dict)
        if swapped:
            _known_keys(rule, field, ("swapped",))
            columns = rule.get("swapped")
            if not isinstance(columns, list) or len(columns) != 2:
                raise IdentityConfigError(f"{field}.swapped: a list of two columns is required")
        else:
            columns = rule
            if not isinstance(columns, list) or not columns:
                raise IdentityConfigError(f"{field}: a non-empty list of columns is required")
        _all_known(columns, field, known, "column")
        out.append(BlockingRule(tuple(columns), swapped))
    return tuple(out)


def _probabilistic(raw: Any, where: str) -> Probabilistic:
    if raw is None:
        return Probabilistic()
    if not isinstance(raw, dict):
        raise IdentityConfigError(f"{where}: must be a mapping (enabled, threshold, ...)")
    _known_keys(raw, where, PROBABILISTIC_SETTINGS)
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise IdentityConfigError(f"{where}.enabled: true or false is required")
    threshold = raw.get("threshold", "auto")
    if threshold != "auto" and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 < threshold < 1
    ):
        raise IdentityConfigError(
            f"{where}.threshold: auto or a match probability above 0 and below 1 is required"
        )
    days = raw.get("retrain_after_days", Probabilistic.retrain_after_days)
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise IdentityConfigError(f"{where}.retrain_after_days: a number of days >= 1 is required")
    cap = raw.get("max_block_size", Probabilistic.max_block_size)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 2:
        raise IdentityConfigError(f"{where}.max_block_size: a number of records >= 2 is required")
    sample = raw.get("training_max_records", Probabilistic.training_max_records)
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1000:
        raise IdentityConfigError(
            f"{where}.training_max_records: a number of records >= 1000 is required"
        )
    comparisons = _comparisons(raw.get("comparisons"), f"{where}.comparisons")
    compared = {c.column for c in comparisons}
    for c in comparisons:
        if c.swapped_with is not None and c.swapped_with not in compared:
            raise IdentityConfigError(
                f"{where}.comparisons.{c.column}.swapped_with: {c.swapped_with} is not compared"
            )
    return Probabilistic(
        enabled=enabled,
        threshold=None if threshold == "auto" else float(threshold),
        min_precision=_share(raw.get("min_precision"), f"{where}.min_precision", 0.999),
        retrain_after_days=days,
        prior_recall=_share(raw.get("prior_recall"), f"{where}.prior_recall", 0.8),
        comparisons=comparisons,
        blocking=_rules(raw.get("blocking"), f"{where}.blocking", DEFAULT_BLOCKING),
        training_blocking=_rules(
            raw.get("training_blocking"), f"{where}.training_blocking", DEFAULT_TRAINING_BLOCKING
        ),
        deterministic_rules=_rules(
            raw.get("deterministic_rules"),
            f"{where}.deterministic_rules",
            DEFAULT_DETERMINISTIC_RULES,
        ),
        max_block_size=cap,
        training_max_records=sample,
    )


def load() -> IdentityConfig:
    """vars.identity as a run sees it (dbt_project.yml, C360_DBT_VARS applied), validated."""
    where = "vars.identity (dbt_project.yml or C360_DBT_VARS)"
    return parse(project_vars().get("identity"), where)


# Golden-record columns customer_360 is built from (its contract needs every one, exactly once).
GOLDEN_COLUMNS = (
    "first_name", "last_name", "email_normalized", "phone_e164", "date_of_birth",
    "address_line1", "city", "postal_code", "country_code", "time_zone",
)  # fmt: skip
RECORD_SOURCES = ("crm", "loyalty", "shop", "web")


@dataclass(frozen=True)
class SurvivorshipGroup:
    name: str
    columns: tuple[str, ...]
    source_priority: tuple[str, ...]


def _sources(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise IdentityConfigError(f"{field}: a non-empty list of sources is required")
    return _distinct_known(value, field, RECORD_SOURCES, "source")


def parse_survivorship(
    raw: dict[str, Any], where: str = "vars.survivorship"
) -> tuple[SurvivorshipGroup, ...]:
    """Validate the survivorship block: every golden column in exactly one group, known sources."""
    if not isinstance(raw, dict):
        raise IdentityConfigError(f"{where}: must be a mapping")
    _known_keys(raw, where, ("default_source_priority", "attributes"))
    default = _sources(raw.get("default_source_priority"), f"{where}.default_source_priority")
    groups = []
    seen: dict[str, str] = {}
    attributes = raw.get("attributes")
    if not isinstance(attributes, dict) or not attributes:
        raise IdentityConfigError(f"{where}.attributes: a mapping of attribute groups is required")
    for name, settings in attributes.items():
        field = f"{where}.attributes.{name}"
        columns = (settings or {}).get("columns")
        if not isinstance(columns, list) or not columns:
            raise IdentityConfigError(f"{field}.columns: a non-empty list of columns is required")
        for column in columns:
            if column not in GOLDEN_COLUMNS:
                raise IdentityConfigError(
                    f"{field}.columns: {column!r} is not a golden-record column "
                    f"(known: {', '.join(GOLDEN_COLUMNS)})"
                )
            if column in seen:
                raise IdentityConfigError(
                    f"{field}.columns: {column!r} is already in group {seen[column]!r}"
                )
            seen[column] = name
        priority = (
            _sources(settings["source_priority"], f"{field}.source_priority")
            if "source_priority" in settings
            else default
        )
        groups.append(SurvivorshipGroup(name, tuple(columns), priority))
    if missing := [c for c in GOLDEN_COLUMNS if c not in seen]:
        raise IdentityConfigError(
            f"{where}.attributes: no group chooses {', '.join(missing)} (customer_360 needs them)"
        )
    return tuple(groups)


def load_survivorship() -> tuple[SurvivorshipGroup, ...]:
    """vars.survivorship as a run sees it, validated."""
    where = "vars.survivorship (dbt_project.yml or C360_DBT_VARS)"
    return parse_survivorship(project_vars().get("survivorship"), where)
