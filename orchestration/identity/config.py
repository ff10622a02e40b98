"""The identity-resolution config: `vars.identity` in dbt_project/dbt_project.yml.

One YAML block sets identifier types (priority, max source records sharing one value, whether a
shared value must also agree on first name) and the junk blocklist (exact values and whole-value
regexes). dbt reads it (int_identity__dropped_links);
this module validates it with errors that name the field, and lets tests and tools use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
import yaml

from orchestration.paths import dbt_project_dir

IDENTIFIER_TYPES = ("crm_contact_id", "shop_customer_id", "email", "phone")


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

    def is_blocked(self, identifier_type: str, value: str) -> bool:
        return any(
            e.identifier_type == identifier_type and e.matches(value) for e in self.blocklist
        )


def parse(raw: dict[str, Any], where: str = "vars.identity") -> IdentityConfig:
    if not isinstance(raw, dict):
        raise IdentityConfigError(f"{where}: must be a mapping")
    priorities: dict[str, int] = {}
    limits: dict[str, int] = {}
    guarded: set[str] = set()
    for name, settings in (raw.get("identifiers") or {}).items():
        if name not in IDENTIFIER_TYPES:
            raise IdentityConfigError(
                f"{where}.identifiers.{name}: unknown identifier type (known: {', '.join(IDENTIFIER_TYPES)})"
            )
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
    return IdentityConfig(priorities, limits, tuple(entries), frozenset(guarded), distance)


def load() -> IdentityConfig:
    doc = yaml.safe_load((dbt_project_dir() / "dbt_project.yml").read_text())
    return parse((doc.get("vars") or {}).get("identity"), "dbt_project.yml: vars.identity")
