"""Shared by the platform sync tests (Google Ads, Meta, Klaviyo): the consented audience read
from the marts (not from the sync's report), a warehouse copy per test, and the fields a
platform sync maps."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

FIELDS = """fields:
  email: email
  phone: phone
  first_name: first_name
  last_name: last_name
  postal_code: postal_code
  country_code: country_code
"""


def expected_audience(con: duckdb.DuckDBPyConnection, segment: str = "lapsed_high_value") -> dict:
    """customer_id → its fields, for everyone consented, reachable, not erased, not held out."""
    rows = con.execute(
        """
        select c.customer_id, c.email, c.phone, c.first_name, c.last_name, c.postal_code,
            c.country_code
        from marts.segment_membership as m
        inner join marts.customer_360 as c on m.customer_id = c.customer_id
        inner join marts.consent_state as s
            on s.contact_point = c.email and s.channel = 'email' and s.purpose = 'marketing'
        where m.segment_name = ? and not m.is_holdout and not c.is_erased
            and s.consent_status = 'granted' and s.is_consented and not s.is_suppressed
            and not s.is_expired
        """,
        [segment],
    ).fetchall()
    names = ("email", "phone", "first_name", "last_name", "postal_code", "country_code")
    return {r[0]: dict(zip(names, r[1:], strict=True)) for r in rows}


def not_consented(con: duckdb.DuckDBPyConnection, segment: str = "lapsed_high_value") -> dict:
    """customer_id → fields of segment members who must never reach the platform (held out,
    erased, unconsented, suppressed, expired or without a consent record)."""
    everyone = con.execute(
        """
        select c.customer_id, c.email, c.phone, c.first_name, c.last_name, c.postal_code,
            c.country_code
        from marts.segment_membership as m
        inner join marts.customer_360 as c on m.customer_id = c.customer_id
        where m.segment_name = ?
        """,
        [segment],
    ).fetchall()
    allowed = expected_audience(con, segment)
    names = ("email", "phone", "first_name", "last_name", "postal_code", "country_code")
    return {r[0]: dict(zip(names, r[1:], strict=True)) for r in everyone if r[0] not in allowed}


def warehouse_copy(source: Path, folder: Path) -> Path:
    """A copy of the session pipeline's warehouse this test may write."""
    copy = folder / "warehouse.duckdb"
    shutil.copy(source, copy)
    return copy
