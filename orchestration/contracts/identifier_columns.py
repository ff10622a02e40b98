"""Which raw columns hold a person's identifiers, and of which kind (grain: one column of one
source contract). One list for every reader: the phone lookup parses the phone columns
(orchestration/identity/phones.py), erasure and tombstones match every column
(orchestration/privacy/). A new identifier column is added here only.

Kinds: `email`, `phone` (with the column giving its region, where the source has one), the
source ids `crm_contact_id`, `shop_customer_id`, `loyalty_member_id`, `anonymous_id`, and
`customer_id`; a consent table's `contact_point` is an email, a phone or a customer id by its
row's `contact_point_type` (kind BY_TYPE).
"""

from __future__ import annotations

from dataclasses import dataclass

BY_TYPE = "contact_point"  # kind decided per row by contact_point_type


@dataclass(frozen=True)
class IdColumn:
    """One raw column holding an identifier: its kind, and its region (phones) or type column."""

    column: str
    kind: str
    region_column: str | None = None
    type_column: str | None = None


_CONSENT = (IdColumn("contact_point", BY_TYPE, type_column="contact_point_type"),)
IDENTIFIER_COLUMNS: dict[str, tuple[IdColumn, ...]] = {
    "crm__contacts": (
        IdColumn("contact_id", "crm_contact_id"),
        IdColumn("email", "email"),
        IdColumn("phone", "phone", "country_code"),
        IdColumn("mobile_phone", "phone", "country_code"),
    ),
    "shop__customers": (
        IdColumn("shop_customer_id", "shop_customer_id"),
        IdColumn("email", "email"),
        IdColumn("phone", "phone", "country_code"),
    ),
    "loyalty__members": (
        IdColumn("member_id", "loyalty_member_id"),
        IdColumn("crm_contact_id", "crm_contact_id"),
        IdColumn("email", "email"),
        IdColumn("phone", "phone"),
    ),
    "shop__orders": (IdColumn("shop_customer_id", "shop_customer_id"),),
    "web__events": (
        IdColumn("anonymous_id", "anonymous_id"),
        IdColumn("user_id", "shop_customer_id"),
    ),
    "email__engagement": (IdColumn("email", "email"),),
    "consent__events": _CONSENT,
    "consent__suppressions": _CONSENT,
    "consent__erasure_requests": _CONSENT,
}


def phone_columns() -> tuple[tuple[str, IdColumn], ...]:
    """(contract id, column) of every column that holds a phone number on some or all rows."""
    return tuple(
        (table, col)
        for table, cols in IDENTIFIER_COLUMNS.items()
        for col in cols
        if col.kind in ("phone", BY_TYPE)
    )
