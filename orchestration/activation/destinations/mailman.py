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

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pydantic import Field

from orchestration.activation.destinations._platform_spec import ClientRecipe, platform_spec
from orchestration.activation.destinations.http_platform import (
    Answer,
    PlatformClient,
    PlatformConfig,
    basic_auth,
    platform_errors,
)
from orchestration.activation.destinations.registry import Limits
from orchestration.activation.destinations.rows import Outcome, Row
from orchestration.activation.sync_definition import EnvName

if TYPE_CHECKING:
    from orchestration.activation.sync_definition import SyncDefinition


MailmanConfigError, MailmanAuthError = platform_errors("Mailman", __name__)


class MailmanConfig(PlatformConfig):
    """A Mailman sync's `config:`: the core REST API root (e.g. http://localhost:8001/3.1),
    the list; REST credentials are env var NAMES."""

    config_error = MailmanConfigError

    list_id: str = Field(pattern=r"^[A-Za-z0-9._-]+\.[A-Za-z0-9.-]+$")  # name.domain
    user_env: EnvName = "C360_MAILMAN_REST_USER"
    password_env: EnvName = "C360_MAILMAN_REST_PASSWORD"
    timeout_seconds: float = Field(default=30.0, gt=0)


class MailmanClient(PlatformClient):
    """Subscribes and unsubscribes the rows of one sync on one list (module docstring).
    `kwargs`: the PlatformClient's (http, sleep, log, rate)."""

    platform = "Mailman"
    auth_error = MailmanAuthError

    def __init__(
        self, config: MailmanConfig, sync: str, user: str, password: str, **kwargs: Any
    ) -> None:
        headers = {"Authorization": basic_auth(user, password)}
        super().__init__(sync, config.endpoint, headers, config.client_settings(1), [password],
                         **kwargs)  # fmt: skip
        self.config = config
        self.auth_env = f"{config.user_env} and {config.password_env}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Answer:
        return self.request(method, path, **kwargs)

    def _member(self, email: str) -> str | Answer | None:
        """The member's REST path (`/members/<id>`), None if not on the roster, or the Answer
        that did not say (a timeout, or given up)."""
        answer = self._call("GET", f"/lists/{self.config.list_id}/member/{quote(email, safe='@')}")
        if answer.response is None:
            return answer
        if answer.status == 404:
            return None
        if answer.status != 200:
            return Answer(None, f"HTTP {answer.status}")
        path = urlsplit(str(answer.body().get("self_link", ""))).path
        return path[path.index("/members/") :] if "/members/" in path else Answer(None, "no link")

    def roster(self) -> set[str]:
        """Every email subscribed to the list (paged)."""
        emails: set[str] = set()
        page = 1
        while True:
            answer = self._call(
                "GET", f"/lists/{self.config.list_id}/roster/member",
                params={"count": 500, "page": page},
            )  # fmt: skip
            if not answer.ok(200):
                raise RuntimeError(f"{self.sync}: the roster could not be read")
            body = answer.body()
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
            if answer.timeout:
                member = self._member(row.identifier)  # read back before resending
                if isinstance(member, str):
                    return Outcome("ok", "reconciled by read-back", 1)
                continue
            return self.outcome(answer, 200, 201, 409)  # 409: already on the roster
        return Outcome("unknown", "timeout", 1)

    def _unsubscribe(self, row: Row) -> Outcome:
        for _ in range(self.config.max_attempts):
            member = self._member(row.identifier)
            if member is None:
                return Outcome("ok", "not on the roster", 1)
            if isinstance(member, Answer):
                if member.timeout:
                    continue
                return Outcome("retryable", member.reason, 1)
            answer = self._call("DELETE", member)
            if answer.timeout:
                continue  # read back on the next pass
            return self.outcome(answer, 200, 204, 404)
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


_RECIPE = ClientRecipe(
    MailmanClient,
    "endpoint and list_id needed",
    {"user_env": "Mailman REST user", "password_env": "Mailman REST password"},
)


def build_client(sync: SyncDefinition, log: Callable[[str], None]) -> MailmanClient:
    """The client of one Mailman sync: REST credentials from the env vars its config names."""
    if sync.identifier != "email":
        raise MailmanConfigError(f"{sync.path}: identifier: a Mailman sync needs `email`")
    return _RECIPE.build(MailmanConfig, sync, log)


DESTINATION = platform_spec(
    "mailman",
    "GNU Mailman 3 mailing list (core REST API: subscribe, unsubscribe, roster)",
    MailmanConfig,
    Limits(batch_rows=1000, max_in_flight=1),
    build_client,
    modes=("upsert", "mirror", "delete"),
)
