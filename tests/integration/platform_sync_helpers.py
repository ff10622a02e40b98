"""Shared by the platform sync tests: the consented audience read from the marts (not from the
sync's report), a warehouse copy per test, each platform's sync YAML against its local server,
and each platform's server seen the same way (`Platform`: who it holds, what it applied)."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from orchestration.activation.destinations import hashing
from tests.servers import mailman
from tests.servers.braze import BrazeServer
from tests.servers.common import Faults, PlatformServer
from tests.servers.google_ads import GoogleAdsServer, member_key
from tests.servers.klaviyo import KlaviyoServer
from tests.servers.mailchimp import MailchimpServer
from tests.servers.meta import MetaServer

FIELDS = """fields:
  email: email
  phone: phone
  first_name: first_name
  last_name: last_name
  postal_code: postal_code
  country_code: country_code
"""
PLATFORMS = ("braze", "mailchimp", "google_ads", "meta", "klaviyo", "mailman")
BRAZE_KEY, BRAZE_GROUP = "local-braze-key-not-real", "sg-lapsed"
MAILCHIMP_KEY, MAILCHIMP_LIST = "local-mailchimp-key-not-real-us6", "a1b2c3d4e5"
CREDENTIALS = {
    "TEST_BRAZE_KEY": BRAZE_KEY,
    "TEST_MAILCHIMP_KEY": MAILCHIMP_KEY,
    "TEST_GOOGLE_ADS_DEVELOPER_TOKEN": "dev-token",
    "TEST_GOOGLE_ADS_ACCESS_TOKEN": "access-token",
    "TEST_META_ACCESS_TOKEN": "meta-token",
    "TEST_KLAVIYO_API_KEY": "pk_test",
    "TEST_MAILMAN_USER": mailman.USER,
    "TEST_MAILMAN_PASSWORD": mailman.PASSWORD,
}
HEAD = """name: {platform}__lapsed_high_value
description: Lapsed high-value customers to {platform} (test).
segment: lapsed_high_value
destination: {platform}
channel: email
purpose: marketing
mode: mirror
"""
WAITS = """  timeout_seconds: 0.5
  backoff_seconds: 0.01
  max_attempts: 6
"""
CONFIGS = {
    "braze": """identifier: customer_id
batch_rows: 6
max_in_flight: 3
fields:
  email: email
  first_name: first_name
config:
  endpoint: {url}
  api_key_env: TEST_BRAZE_KEY
  subscription_group_id: sg-lapsed
""",
    "mailchimp": """identifier: email
batch_rows: 7
max_in_flight: 3
fields:
  email: email
  FNAME: first_name
config:
  endpoint: {url}/3.0
  list_id: a1b2c3d4e5
  api_key_env: TEST_MAILCHIMP_KEY
""",
    "google_ads": f"""identifier: customer_id
batch_rows: 10000
{FIELDS}config:
  customer_id: "1234567890"
  user_list_id: "555"
  endpoint: {{url}}
  developer_token_env: TEST_GOOGLE_ADS_DEVELOPER_TOKEN
  access_token_env: TEST_GOOGLE_ADS_ACCESS_TOKEN
  max_identifiers_per_request: 10
  poll_seconds: 0.01
""",
    "meta": f"""identifier: customer_id
batch_rows: 10
{FIELDS}config:
  audience_id: "23850000000000001"
  endpoint: {{url}}
  access_token_env: TEST_META_ACCESS_TOKEN
""",
    "klaviyo": f"""identifier: customer_id
batch_rows: 5
{FIELDS}config:
  list_id: Y6nRLr
  endpoint: {{url}}
  api_key_env: TEST_KLAVIYO_API_KEY
  poll_seconds: 0.01
""",
    "mailman": """identifier: email
batch_rows: 1000
fields:
  email: email
  first_name: first_name
  last_name: last_name
config:
  endpoint: {url}/3.1
  list_id: {list_id}
  user_env: TEST_MAILMAN_USER
  password_env: TEST_MAILMAN_PASSWORD
""",
}


def sync_yaml(platform: str, url: str, list_id: str = "") -> str:
    """The sync YAML of `platform` against its local server at `url` (short waits)."""
    return (
        HEAD.format(platform=platform)
        + CONFIGS[platform].format(url=url, list_id=list_id)
        + (WAITS)
    )


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


@dataclass
class Platform:
    """One platform's local server as a test sees it, every key in the platform's key space
    (customer_id, subscriber hash, hashed identifiers, email)."""

    url: str
    server: PlatformServer
    key: Callable[[str, dict[str, Any]], Any]  # (customer_id, fields) -> the platform's key
    applied: Callable[[], list[Any]]  # one key per add/create the platform applied
    held: Callable[[], set[Any]]  # who the audience holds now
    duplicates: Callable[[], int]  # the server's own count of repeated adds (0 if it has none)
    list_id: str = ""


def _email_key(fields: dict[str, Any]) -> str | None:
    return (fields.get("email") or "").lower() or None


def _md5(email: str | None) -> str | None:
    return hashlib.md5(email.lower().encode()).hexdigest() if email else None


@contextlib.contextmanager
def platform_server(
    platform: str,
    faults: Faults,
    invalid: dict[str, dict[str, Any]],
    core: mailman.MailmanCore | None = None,
) -> Iterator[Platform]:
    """The local server of `platform`, running, with `faults`; the people of `invalid`
    (customer_id → fields) are refused by the platform in its own partial-success shape
    (Braze errors[] by index, Mailchimp per-member errors, Klaviyo import errors, Mailman 400).
    Google Ads and Meta refuse what is not a SHA-256 hash: the test makes the client send one
    for them (see test_platform_sync_convergence)."""
    emails = {f["email"].lower() for f in invalid.values() if f.get("email")}
    server: Any
    if platform == "braze":
        server = BrazeServer(BRAZE_KEY, faults, invalid_ids=set(invalid))
        spec = Platform(
            server.url, server, lambda cid, f: cid,
            lambda: [ext for (ext, _), n in server.applied.items() for _ in range(n)],
            lambda: server.subscribed(BRAZE_GROUP), lambda: 0,
        )  # fmt: skip
    elif platform == "mailchimp":
        server = MailchimpServer(MAILCHIMP_KEY, MAILCHIMP_LIST, faults, invalid_emails=emails)
        spec = Platform(
            server.url, server, lambda cid, f: _md5(f["email"]),
            lambda: [k for (k, status, _), n in server.applied.items() if status == "subscribed"
                     for _ in range(n)],
            lambda: {k for k, m in server.members.items() if m["status"] == "subscribed"},
            lambda: 0,
        )  # fmt: skip
    elif platform == "google_ads":
        server = GoogleAdsServer(faults=faults, max_identifiers_per_request=10)
        real = hashing.google_user_identifiers
        spec = Platform(
            server.url, server, lambda cid, f: member_key({"userIdentifiers": real(f)}),
            lambda: [k for kind, k in server.applied if kind == "create"],
            lambda: set(server.members), lambda: server.duplicate_creates,
        )  # fmt: skip
    elif platform == "meta":
        server = MetaServer(faults=faults, max_rows=25)
        real_row = hashing.meta_user_row
        spec = Platform(
            server.url, server, lambda cid, f: tuple(real_row(f)),
            lambda: [k for kind, k in server.applied if kind == "add"],
            lambda: set(server.members), lambda: server.duplicate_adds,
        )  # fmt: skip
    elif platform == "klaviyo":
        server = KlaviyoServer(faults=faults, max_profiles_per_job=5, invalid_ids=set(invalid))
        spec = Platform(
            server.url, server, lambda cid, f: cid,
            lambda: [i for kind, i in server.applied if kind == "import"],
            lambda: set(server.member_attributes()), lambda: server.duplicate_imports,
        )  # fmt: skip
    elif platform == "mailman":
        assert core is not None
        list_id = core.create_list(f"conv{time.monotonic_ns() % 10**9}")
        server = mailman.MailmanFaultProxy(core, faults, invalid_emails=emails)
        spec = Platform(
            server.url, server, lambda cid, f: _email_key(f),
            lambda: [e for e, n in server.applied.items() for _ in range(n)],
            lambda: {e.lower() for e in core.roster(list_id)}, lambda: 0, list_id,
        )  # fmt: skip
    else:
        raise ValueError(platform)
    with server:
        yield spec
