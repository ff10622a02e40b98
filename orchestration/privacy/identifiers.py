"""Identifiers of a person and how each raw column holds them.

Kinds: `email` (trimmed, lower case), `phone` (E.164 by libphonenumber, the region hint as the
identity phones use), source ids `crm_contact_id`, `shop_customer_id`, `loyalty_member_id`,
`anonymous_id`, and `customer_id`. `IDENTIFIER_COLUMNS`
(orchestration/contracts/identifier_columns.py) says, per source contract, which columns hold
which kind; a consent table's `contact_point` is an email, a phone or (an erasure request from
`c360 erase --customer-id`) a customer id, by its row's `contact_point_type`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from orchestration.contracts.identifier_columns import BY_TYPE as BY_TYPE
from orchestration.contracts.identifier_columns import IDENTIFIER_COLUMNS as IDENTIFIER_COLUMNS
from orchestration.contracts.identifier_columns import IdColumn as IdColumn
from orchestration.identity import phones

KINDS = (
    "email", "phone", "crm_contact_id", "shop_customer_id", "loyalty_member_id", "anonymous_id",
    "customer_id",
)  # fmt: skip
# The contracts whose rows describe a person and carry their other identifiers (expansion).
PERSON_CONTRACTS = ("crm__contacts", "shop__customers", "loyalty__members", "web__events")
# customer_id_map.source → the kind of its source_record_id
MAP_SOURCE_KIND = {
    "crm": "crm_contact_id",
    "shop": "shop_customer_id",
    "loyalty": "loyalty_member_id",
    "web": "anonymous_id",
}
# what a phone is written with (also Arrow's RE2 in privacy/files.py: the same syntax there)
PHONE_PATTERN = r"^\+?[0-9 ().\-/]{7,25}$"
_PHONE_TEXT = re.compile(PHONE_PATTERN)


@lru_cache(maxsize=1)
def _default_region() -> str:
    # read once: phones.default_region() parses dbt_project.yml on every call
    return phones.default_region()


@lru_cache(maxsize=200_000)
def _e164(text: str, region: str) -> str | None:
    return phones.to_e164(text, region, _default_region()).e164


def normalise(kind: str, value: object, region: str | None = None) -> str | None:
    """The normalised form of one value of `kind`; None when it is no identifier."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if kind == "email":
        return text.lower()
    if kind == "phone":
        return _e164(text, (region or "").strip().upper())
    return text


def kind_of_row(col: IdColumn, type_value: object) -> str | None:
    """The kind of a consent contact point by its row's type (email, phone, customer_id)."""
    if col.kind != BY_TYPE:
        return col.kind
    t = str(type_value or "").strip().lower()
    return {"email": "email", "phone": "phone", "customer_id": "customer_id"}.get(t)


def looks_like_phone(text: str) -> bool:
    return bool(_PHONE_TEXT.match(text)) and sum(ch.isdigit() for ch in text) >= 7


def cell_matches(value: object, needles: dict[tuple[str, str], set[str]]) -> set[str]:
    """Request ids whose identifiers equal one cell of a file of unknown columns (an outbox
    drop, a landing file): an email, an id or customer id as it is, a phone by its E.164."""
    if value is None:
        return set()
    text = str(value).strip()
    if not text:
        return set()
    hits: set[str] = set()
    for kind in ("email",) if "@" in text else KINDS:
        if kind == "phone":
            continue
        hits |= needles.get((kind, text.lower() if kind == "email" else text), set())
    if looks_like_phone(text):
        e164 = _e164(text, "")
        if e164:
            hits |= needles.get(("phone", e164), set())
    return hits


def hashes(ids: Iterable[tuple[str, str]]) -> list[str]:
    """The keyed hashes (tombstones) of normalised (kind, value) identifiers."""
    from orchestration.privacy.keys import keyed_hash

    return sorted({keyed_hash(k, v) for k, v in ids})
