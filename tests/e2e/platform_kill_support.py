"""What the per-platform SIGKILL test (test_platform_kill.py) needs of each campaign platform: its
sync YAML against a local server, the server started with injected faults and slowed answers
(so a kill lands mid-send), and the server's own view of what it holds and what it applied —
all in one key space per platform (Braze external_id, Mailchimp subscriber hash, Google
UserData key, Meta row, Klaviyo external_id, Mailman email).

Mailman is a real Mailman 3 core (tests/servers/mailman.py); `mailman.MailmanFaultProxy` stands in front
of its REST API to inject the same faults as the other servers and to count the subscriptions
Mailman created (201), which Mailman itself does not report."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from orchestration.activation.destinations import hashing
from tests.integration.platform_sync_helpers import FIELDS
from tests.servers import mailman
from tests.servers.braze import BrazeServer
from tests.servers.common import Faults, PlatformServer, Reply, Request
from tests.servers.google_ads import GoogleAdsServer, member_key
from tests.servers.klaviyo import KlaviyoServer
from tests.servers.mailchimp import MailchimpServer

# Faults by write request, in a fixed cycle of ten (so any run of ten or more write requests
# meets every kind and at least 30 % of them): 429 with Retry-After, 5xx, applied-then-too-late.
FAULT_CYCLE = ("rate_limit", None, None, "server_error", None, None, "timeout", None, None, None)
FAULTS = Faults(rate_limit_rate=0.1, server_error_rate=0.1, timeout_rate=0.1,
                retry_after_seconds=1, slow_seconds=1.0)  # fmt: skip
BRAZE_KEY, MAILCHIMP_KEY, MAILCHIMP_LIST, BRAZE_GROUP = (
    "braze-key",
    "mc-key-us1",
    "a1b2c3d4e5",
    "sg-1",
)

HEAD = """name: {platform}__lapsed_high_value
description: Lapsed high-value customers to {platform} (SIGKILL test).
segment: lapsed_high_value
destination: {platform}
channel: email
purpose: marketing
mode: mirror
"""

CONFIGS = {
    "braze": """identifier: customer_id
batch_rows: 3
max_in_flight: 2
fields:
  email: email
  first_name: first_name
config:
  endpoint: {url}
  api_key_env: TEST_KILL_BRAZE_KEY
  subscription_group_id: sg-1
  timeout_seconds: 0.5
""",
    "mailchimp": """identifier: email
batch_rows: 3
max_in_flight: 2
fields:
  email: email
  FNAME: first_name
config:
  endpoint: {url}/3.0
  list_id: a1b2c3d4e5
  api_key_env: TEST_KILL_MAILCHIMP_KEY
  timeout_seconds: 0.5
""",
    "google_ads": """identifier: customer_id
batch_rows: 10000
config:
  customer_id: "1234567890"
  user_list_id: "555"
  endpoint: {url}
  developer_token_env: TEST_KILL_GOOGLE_DEVELOPER_TOKEN
  access_token_env: TEST_KILL_GOOGLE_ACCESS_TOKEN
  max_identifiers_per_request: 20
  timeout_seconds: 0.5
  backoff_seconds: 0.01
  poll_seconds: 0.05
  max_attempts: 6
"""
    + FIELDS,
    "meta": """identifier: customer_id
batch_rows: 4
config:
  audience_id: "23850000000000001"
  endpoint: {url}
  access_token_env: TEST_KILL_META_TOKEN
  timeout_seconds: 0.5
  backoff_seconds: 0.01
  max_attempts: 6
"""
    + FIELDS,
    "klaviyo": """identifier: customer_id
batch_rows: 4
config:
  list_id: Y6nRLr
  endpoint: {url}
  api_key_env: TEST_KILL_KLAVIYO_KEY
  timeout_seconds: 0.5
  backoff_seconds: 0.01
  poll_seconds: 0.05
  max_attempts: 6
"""
    + FIELDS,
    "mailman": """identifier: email
batch_rows: 1000
fields:
  email: email
  first_name: first_name
  last_name: last_name
config:
  endpoint: {url}/3.1
  list_id: {list_id}
  user_env: TEST_KILL_MAILMAN_USER
  password_env: TEST_KILL_MAILMAN_PASSWORD
  timeout_seconds: 0.5
  backoff_seconds: 0.01
  max_attempts: 6
""",
}

SECRETS = {
    "TEST_KILL_BRAZE_KEY": BRAZE_KEY,
    "TEST_KILL_MAILCHIMP_KEY": MAILCHIMP_KEY,
    "TEST_KILL_GOOGLE_DEVELOPER_TOKEN": "dev-token",
    "TEST_KILL_GOOGLE_ACCESS_TOKEN": "access-token",
    "TEST_KILL_META_TOKEN": "meta-token",
    "TEST_KILL_KLAVIYO_KEY": "pk_test",
    "TEST_KILL_MAILMAN_USER": mailman.USER,
    "TEST_KILL_MAILMAN_PASSWORD": mailman.PASSWORD,
}


def sync_yaml(platform: str, url: str, list_id: str = "") -> str:
    """The sync YAML of `platform` against the server at `url`."""
    return HEAD.format(platform=platform) + CONFIGS[platform].format(url=url, list_id=list_id)


def slowed(server: PlatformServer, seconds: float) -> None:
    """Every answer of `server` sent `seconds` after the request was handled (applied), so a
    kill that follows the first applied row lands while the client waits for that answer:
    applied at the platform, not acknowledged in the warehouse."""
    inner = server.handle

    def handle(request: Request) -> Reply:
        reply = inner(request)
        time.sleep(seconds)
        return reply

    server.handle = handle  # type: ignore[method-assign]


def scheduled_faults(server: PlatformServer) -> None:
    """`server.draw()` follows FAULT_CYCLE instead of its seeded RNG: the injected share does
    not depend on how many requests a short run happens to make."""

    def draw() -> str | None:
        with server.lock:
            fault = FAULT_CYCLE[server.write_requests % len(FAULT_CYCLE)]
            server.write_requests += 1
            if fault:
                server.faults_injected[fault] += 1
            return fault

    server.draw = draw  # type: ignore[method-assign]


@dataclass
class Platform:
    """One platform's server as the test sees it (all keys in the platform's key space)."""

    url: str
    server: PlatformServer
    key: Callable[[str, dict[str, Any]], Any]  # (customer_id, fields) -> key
    applied: Callable[[], list[Any]]  # one key per row the platform applied (creates/adds)
    held: Callable[[], set[Any]]  # who the audience holds now
    duplicates: Callable[[], int]  # the server's own count of repeated creates (0 if none)
    list_id: str = ""


def _mc_hash(email: str | None) -> str | None:
    return hashlib.md5(email.lower().encode()).hexdigest() if email else None


@contextlib.contextmanager
def platform_server(
    platform: str, faults: Faults, delay: float, core: mailman.MailmanCore | None = None
) -> Iterator[Platform]:
    """The local server of `platform`, running in a thread, with `faults` and every answer
    `delay` seconds late (Mailman: the fault proxy in front of `core`, on a new list)."""
    if platform == "braze":
        server: Any = BrazeServer(BRAZE_KEY, faults)
        spec = Platform(
            server.url, server, lambda cid, f: cid,
            lambda: [ext for (ext, _), n in server.applied.items() for _ in range(n)],
            lambda: server.subscribed(BRAZE_GROUP), lambda: 0,
        )  # fmt: skip
    elif platform == "mailchimp":
        server = MailchimpServer(MAILCHIMP_KEY, MAILCHIMP_LIST, faults)
        spec = Platform(
            server.url, server, lambda cid, f: _mc_hash(f["email"]),
            lambda: [k for (k, status, _), n in server.applied.items() if status == "subscribed"
                     for _ in range(n)],
            lambda: {k for k, m in server.members.items() if m["status"] == "subscribed"},
            lambda: 0,
        )  # fmt: skip
    elif platform == "google_ads":
        server = GoogleAdsServer(faults=faults, max_identifiers_per_request=20)
        spec = Platform(
            server.url, server,
            lambda cid, f: member_key({"userIdentifiers": hashing.google_user_identifiers(f)}),
            lambda: [k for kind, k in server.applied if kind == "create"],
            lambda: set(server.members), lambda: server.duplicate_creates,
        )  # fmt: skip
    elif platform == "meta":
        from tests.servers.meta import MetaServer

        server = MetaServer(faults=faults, max_rows=25)
        spec = Platform(
            server.url, server, lambda cid, f: tuple(hashing.meta_user_row(f)),
            lambda: [k for kind, k in server.applied if kind == "add"],
            lambda: set(server.members), lambda: server.duplicate_adds,
        )  # fmt: skip
    elif platform == "klaviyo":
        server = KlaviyoServer(faults=faults, max_profiles_per_job=4)
        spec = Platform(
            server.url, server, lambda cid, f: cid,
            lambda: [i for kind, i in server.applied if kind == "import"],
            lambda: set(server.member_attributes()), lambda: server.duplicate_imports,
        )  # fmt: skip
    elif platform == "mailman":
        assert core is not None
        list_id = core.create_list(f"kill{time.monotonic_ns() % 10**9}")
        server = mailman.MailmanFaultProxy(core, faults)
        spec = Platform(
            server.url, server, lambda cid, f: (f["email"] or "").lower() or None,
            lambda: [e for e, n in server.applied.items() for _ in range(n)],
            lambda: {e.lower() for e in core.roster(list_id)}, lambda: 0, list_id,
        )  # fmt: skip
    else:
        raise ValueError(platform)
    scheduled_faults(server)
    slowed(server, delay)
    with server:
        yield spec
