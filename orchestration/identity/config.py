"""The identity-resolution config: `vars.identity` in dbt_project/dbt_project.yml.

One YAML block sets identifier types (priority, max source records sharing one value, whether a
shared value must also agree on first name, at most N per customer optionally within a window of
days), the junk blocklist (exact values and whole-value regexes) and probabilistic matching (on
or off, threshold). dbt reads it (int_identity__dropped_links, int_identity__limit_drops,
int_identity__edges), the asset identity/probabilistic_links reads `probabilistic`;
this module validates it with errors that name the field, and lets tests and tools use it.
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class Probabilistic:
    """Probabilistic matching: on or off, and the match probability a pair needs to link."""

    enabled: bool = False
    threshold: float = 0.9995


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


def _sources_with_duplicates(raw: Any, where: str) -> tuple[str, ...]:
    """The source entities declared to hold several records of one person (known, once each)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise IdentityConfigError(
            f"{where}: a list of source entities is required ({', '.join(PERSON_SOURCES)})"
        )
    for source in raw:
        if source not in PERSON_SOURCES:
            raise IdentityConfigError(
                f"{where}: unknown source entity {source!r} (known: {', '.join(PERSON_SOURCES)})"
            )
    if len(set(raw)) != len(raw):
        raise IdentityConfigError(f"{where}: a source entity is listed twice")
    return tuple(raw)


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


def _probabilistic(raw: Any, where: str) -> Probabilistic:
    if raw is None:
        return Probabilistic()
    if not isinstance(raw, dict):
        raise IdentityConfigError(f"{where}: must be a mapping (enabled, threshold)")
    _known_keys(raw, where, ("enabled", "threshold"))
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise IdentityConfigError(f"{where}.enabled: true or false is required")
    threshold = raw.get("threshold", Probabilistic.threshold)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 < threshold < 1
    ):
        raise IdentityConfigError(
            f"{where}.threshold: a match probability above 0 and below 1 is required"
        )
    return Probabilistic(enabled, float(threshold))


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
    for source in value:
        if source not in RECORD_SOURCES:
            raise IdentityConfigError(
                f"{field}: unknown source {source!r} (known: {', '.join(RECORD_SOURCES)})"
            )
    if len(set(value)) != len(value):
        raise IdentityConfigError(f"{field}: a source is listed twice")
    return tuple(value)


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
