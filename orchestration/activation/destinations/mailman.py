"""GNU Mailman 3 destination: a sync's audience as the subscribers of one mailing list, through
Mailman core's REST API (version 3.1, HTTP basic auth as the REST admin).

The sync's identifier must be `email` (a removal carries only the identifier). Subscribing is
`POST /3.1/members` (list_id, subscriber, display_name from first/last name; pre-verified,
pre-confirmed and pre-approved, since consent was checked by c360; no welcome message): 201, or
409 "Member already subscribed" — both mean the address is on the roster. Unsubscribing finds
the membership (`GET /3.1/lists/{list_id}/member/{email}`) and deletes it
(`DELETE /3.1/members/{member_id}`); an address not on the roster (404) needs nothing. Both are
idempotent, so an answer lost to a timeout is read back from the roster and, if not applied,
sent again. The roster itself: `GET /3.1/lists/{list_id}/roster/member`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field

from orchestration.activation.destinations._platform_http import (
    GaveUp,
    PlatformHttp,
    Retry,
    Timeout,
    json_or_empty,
)
from orchestration.activation.destinations.registry import (
    DestinationConfig,
    DestinationSpec,
    EnvName,
    Limits,
    RateLimiter,
    env_value,
)
from orchestration.activation.destinations.webhook import Outcome, Row
from orchestration.redaction import redact

if TYPE_CHECKING:
    from orchestration.activation.syncs import SyncDefinition


class MailmanConfigError(ValueError):
    """A Mailman sync cannot run: identifier not email, or a credential env var missing."""


class MailmanAuthError(RuntimeError):
    """Mailman refused the REST credentials (401/403)."""


class MailmanConfig(DestinationConfig):
    """A Mailman sync's `config:`. REST credentials are env var NAMES."""

    endpoint: str = Field(pattern=r"^https?://\S+$")  # e.g. http://localhost:8001/3.1
    list_id: str = Field(pattern=r"^[A-Za-z0-9._-]+\.[A-Za-z0-9.-]+$")  # name.domain
    user_env: EnvName = "C360_MAILMAN_REST_USER"
    password_env: EnvName = "C360_MAILMAN_REST_PASSWORD"
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0)


class MailmanClient:
    """Subscribes and unsubscribes the rows of one sync on one list (module docstring)."""

    def __init__(
        self,
        config: MailmanConfig,
        sync: str,
        user: str,
        password: str,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = lambda message: None,
        rate: RateLimiter | None = None,
    ) -> None:
        self.config, self.sync, self.sleep, self.log = config, sync, sleep, log
        self._secrets = [password]
        self.http = http or httpx.Client(timeout=config.timeout_seconds, auth=(user, password))
        self.api = PlatformHttp(
            self.http, Retry(config.max_attempts, config.backoff_seconds), sleep, log,
            rate=rate, name=f"{sync}: mailman",
        )  # fmt: skip
        self.base = config.endpoint.rstrip("/")

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response | Timeout | GaveUp:
        answer = self.api.request(method, f"{self.base}{path}", **kwargs)
        if isinstance(answer, httpx.Response) and answer.status_code in (401, 403):
            raise MailmanAuthError(
                f"{self.sync}: Mailman refused the REST credentials (HTTP {answer.status_code}): "
                f"check {self.config.user_env} and {self.config.password_env}"
            )
        return answer

    def _member(self, email: str) -> str | GaveUp | Timeout | None:
        """The member's REST path (`/members/<id>`), None if not on the roster."""
        answer = self._call("GET", f"/lists/{self.config.list_id}/member/{quote(email, safe='@')}")
        if not isinstance(answer, httpx.Response):
            return answer
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            return GaveUp(f"HTTP {answer.status_code}")
        link = str(json_or_empty(answer).get("self_link", ""))
        path = urlsplit(link).path
        return path[path.index("/members/") :] if "/members/" in path else GaveUp("no self_link")

    def roster(self) -> set[str]:
        """Every email subscribed to the list (paged)."""
        emails: set[str] = set()
        page = 1
        while True:
            answer = self._call(
                "GET", f"/lists/{self.config.list_id}/roster/member",
                params={"count": 500, "page": page},
            )  # fmt: skip
            if not isinstance(answer, httpx.Response) or answer.status_code != 200:
                raise RuntimeError(f"{self.sync}: the roster could not be read")
            body = json_or_empty(answer)
            entries = body.get("entries") or []
            emails |= {str(e.get("email")) for e in entries}
            if page * 500 >= int(body.get("total_size", 0)) or not entries:
                return emails
            page += 1

    def _subscribe(self, row: Row) -> Outcome:
        fields = row.fields
        name = " ".join(str(fields[k]) for k in ("first_name", "last_name") if fields.get(k))
        data = {
            "list_id": self.config.list_id, "subscriber": row.identifier, "display_name": name,
            "pre_verified": "true", "pre_confirmed": "true", "pre_approved": "true",
            "send_welcome_message": "false",
        }  # fmt: skip
        for _ in range(self.config.max_attempts):
            answer = self._call("POST", "/members", data=data)
            if isinstance(answer, Timeout):
                member = self._member(row.identifier)  # read back before resending
                if isinstance(member, str):
                    return Outcome("ok", "reconciled by read-back", 1)
                continue
            if isinstance(answer, GaveUp):
                return Outcome("retryable", answer.why, 1)
            if answer.status_code in (200, 201, 409):  # 409: already on the roster
                return Outcome("ok", "", 1)
            reason = json_or_empty(answer).get("description") or f"HTTP {answer.status_code}"
            return Outcome("rejected", redact(str(reason), self._secrets), 1)
        return Outcome("unknown", "timeout", 1)

    def _unsubscribe(self, row: Row) -> Outcome:
        for _ in range(self.config.max_attempts):
            member = self._member(row.identifier)
            if member is None:
                return Outcome("ok", "not on the roster", 1)
            if isinstance(member, GaveUp):
                return Outcome("retryable", member.why, 1)
            if isinstance(member, Timeout):
                continue
            answer = self._call("DELETE", member)
            if isinstance(answer, Timeout):
                continue  # read back on the next pass
            if isinstance(answer, GaveUp):
                return Outcome("retryable", answer.why, 1)
            if answer.status_code in (200, 204, 404):
                return Outcome("ok", "", 1)
            return Outcome("rejected", f"HTTP {answer.status_code}", 1)
        return Outcome("unknown", "timeout", 1)

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """Every row's outcome by idempotency key (module docstring)."""
        return {
            row.idempotency_key: (
                self._unsubscribe(row) if row.op == "delete" else self._subscribe(row)
            )
            for row in rows
        }

    def delete(self, identifiers: Iterable[str]) -> dict[str, Outcome]:
        """Erasure: unsubscribe each address from the list."""
        return {i: self._unsubscribe(Row(i, "delete", {}, f"erase:{i}")) for i in identifiers}


def build_client(sync: SyncDefinition, log: Callable[[str], None]) -> MailmanClient:
    """The client of one Mailman sync: REST credentials from the env vars its config names."""
    config = sync.config
    if not isinstance(config, MailmanConfig):
        raise MailmanConfigError(f"{sync.path}: config: endpoint and list_id needed")
    if sync.identifier != "email":
        raise MailmanConfigError(f"{sync.path}: identifier: a Mailman sync needs `email`")
    user = env_value(config.user_env, MailmanConfigError, "Mailman REST user")
    password = env_value(config.password_env, MailmanConfigError, "Mailman REST password")
    rate = RateLimiter(getattr(sync, "rate_per_second", None))
    return MailmanClient(config, sync.name, user, password, log=log, rate=rate)


DESTINATION = DestinationSpec(
    kind="mailman",
    description="GNU Mailman 3 mailing list (core REST API: subscribe, unsubscribe, roster)",
    config=MailmanConfig,
    limits=Limits(batch_rows=1000, max_in_flight=1),
    build=build_client,
    errors=(MailmanConfigError, MailmanAuthError),
    modes=("upsert", "mirror", "delete"),
    deletes=True,
)
