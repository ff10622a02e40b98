"""Mailchimp destination: the audience is one Mailchimp list (audience); each person a list
member identified by email. Documented Marketing API v3 calls used:

* add/update — POST /lists/{list_id} (batch subscribe or unsubscribe): at most 500 members per
  request, `update_existing: true`, each member `{email_address, status: "subscribed",
  merge_fields}`. The answer is 200 even when some members fail: `errors: [{email_address,
  error, error_code}]` name them (rejected with Mailchimp's error); members in `new_members` or
  `updated_members` are applied; a member in neither is read back.
* remove from the audience — `removal: unsubscribed` (default): the same batch call with status
  `unsubscribed`; `removal: archived`: DELETE /lists/{list_id}/members/{subscriber_hash} per
  member (204; 404 = not a member, nothing to remove).
* read back — GET /lists/{list_id}/members/{subscriber_hash}: 404 = not a member; otherwise its
  `status` and `merge_fields` say whether the row is held as sent.
* erase — `delete(identifiers)`: POST /lists/{list_id}/members/{subscriber_hash}/actions/
  delete-permanent (204).
* platform-side unsubscribes — `unsubscribes(since)`: GET /lists/{list_id}/members with
  `status=unsubscribed&since_last_changed=<ISO 8601>`, paged with count/offset.

subscriber_hash = MD5 hex of the lower-cased email. The sync's identifier must be the field that
carries the email (`identifier: email` with `fields: {email: email, ...}`); the other fields
are merge fields, named by their merge tag (FNAME, LNAME, ...). Auth: HTTP basic with the API key
as password (`auth: basic`, default) or `Authorization: Bearer <OAuth token>` (`auth: bearer`);
the key comes from the env var the sync names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import httpx
from pydantic import ValidationInfo, field_validator, model_validator

from orchestration.activation.destinations._platform_spec import platform_spec, sync_config
from orchestration.activation.destinations.http_platform import (
    Answer,
    ClientSettings,
    PlatformClient,
    PlatformConfig,
    PlatformConfigError,
    RowResult,
    basic_auth,
)
from orchestration.activation.destinations.registry import Limits, PlatformUnsubscribe
from orchestration.activation.destinations.rows import Outcome, Row
from orchestration.activation.sync_definition import EnvName

if TYPE_CHECKING:
    from orchestration.activation.sync_definition import SyncDefinition

BATCH_MAX = 500  # members per POST /lists/{list_id}
PAGE = 1000  # members per page when listing unsubscribes (Mailchimp's maximum count)


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 hex of the lower-cased email address."""
    return hashlib.md5(email.lower().encode()).hexdigest()


class MailchimpConfig(PlatformConfig):
    """A mailchimp sync's `config:`: API root (https://<dc>.api.mailchimp.com/3.0), list, the
    env var holding the key, how to authenticate and what a removal does."""

    https_only = True

    list_id: str
    api_key_env: EnvName = "C360_MAILCHIMP_API_KEY"
    auth: Literal["basic", "bearer"] = "basic"
    removal: Literal["unsubscribed", "archived"] = "unsubscribed"

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str) -> str:
        if not value.isalnum():
            raise ValueError("must be the list's id (letters and digits)")
        return value

    @model_validator(mode="after")
    def _email_identifier(self, info: ValidationInfo) -> MailchimpConfig:
        context = info.context or {}
        columns, identifier = context.get("columns", {}), context.get("identifier")
        if identifier is not None and columns.get(identifier) != "email":
            raise ValueError(
                "identifier: a mailchimp sync is keyed by email: set `identifier: email` and "
                "map a field `email` to the email column"
            )
        return self


class MailchimpClient(PlatformClient):
    """One mailchimp sync's client; see the module docstring."""

    platform = "mailchimp"

    def __init__(self, sync: str, config: MailchimpConfig, key: str, settings: ClientSettings,
                 email_field: str = "email", **kwargs: Any) -> None:  # fmt: skip
        token = basic_auth("c360", key) if config.auth == "basic" else f"Bearer {key}"
        headers = {"Authorization": token, "Content-Type": "application/json"}
        super().__init__(sync, config.endpoint, headers, settings, secrets=[key], **kwargs)
        self.config, self.auth_env, self.email_field = config, config.api_key_env, email_field
        self._list = f"/lists/{quote(config.list_id, safe='')}"

    def batch_rows(self, op: str) -> int:
        return BATCH_MAX if op == "upsert" or self.config.removal == "unsubscribed" else 1

    def _member_path(self, email: str) -> str:
        return f"{self._list}/members/{subscriber_hash(email)}"

    def merge_fields(self, row: Row) -> dict[str, Any]:
        return {k: v for k, v in row.fields.items() if k != self.email_field}

    def apply(self, op: str, rows: list[Row]) -> list[RowResult] | Answer:
        if op == "delete" and self.config.removal == "archived":
            return self._archive(rows[0])
        members = [
            {"email_address": row.identifier, "status": "subscribed",
             "merge_fields": self.merge_fields(row)}
            if op == "upsert"
            else {"email_address": row.identifier, "status": "unsubscribed"}
            for row in rows
        ]  # fmt: skip
        answer = self.request(
            "POST", self._list, json={"members": members, "update_existing": True}
        )
        if answer.response is None or answer.response.status_code != 200:
            return answer
        body = answer.json() or {}
        errors = {
            str(e.get("email_address", "")).lower(): str(e.get("error") or e.get("error_code"))
            for e in body.get("errors") or []
            if isinstance(e, dict)
        }
        done = {
            str(m.get("email_address", "")).lower()
            for key in ("new_members", "updated_members")
            for m in body.get(key) or []
            if isinstance(m, dict)
        }
        results: list[RowResult] = []
        for row in rows:
            email = row.identifier.lower()
            if email in errors:
                results.append(("rejected", errors[email]))
            elif email in done:
                results.append(("ok", ""))
            else:
                results.append(("unknown", "not in the answer"))
        return results

    def _archive(self, row: Row) -> list[RowResult] | Answer:
        answer = self.request("DELETE", self._member_path(row.identifier))
        if answer.response is not None and answer.response.status_code in (204, 404):
            return [("ok", "")]
        return answer

    def read_back(self, rows: list[Row]) -> dict[str, bool | None]:
        held: dict[str, bool | None] = {}
        for row in rows:
            answer = self.request("GET", self._member_path(row.identifier))
            if answer.response is None:
                held[row.idempotency_key] = None
                continue
            if answer.response.status_code == 404:
                held[row.idempotency_key] = row.op == "delete"
                continue
            if answer.response.status_code != 200:
                held[row.idempotency_key] = None
                continue
            member = answer.json() or {}
            status = member.get("status")
            if row.op == "delete":
                wanted = ("archived",) if self.config.removal == "archived" else ("unsubscribed",)
                held[row.idempotency_key] = status in wanted
            else:
                fields = member.get("merge_fields") or {}
                held[row.idempotency_key] = status == "subscribed" and all(
                    fields.get(k) == v for k, v in self.merge_fields(row).items()
                )
        return held

    def delete(self, identifiers: Sequence[str]) -> dict[str, Outcome]:
        """Permanently delete each email's member (erasure); an outcome per identifier."""
        outcomes: dict[str, Outcome] = {}
        for email in identifiers:
            path = self._member_path(email) + "/actions/delete-permanent"
            # 404: the list holds nobody to erase
            outcomes[email] = self.outcome(self.request("POST", path), 200, 204, 404)
        return outcomes

    def unsubscribes(self, since: dt.datetime | None = None) -> Iterator[PlatformUnsubscribe]:
        """Members who unsubscribed at Mailchimp (link, complaint) since `since`."""
        offset = 0
        while True:
            params: dict[str, Any] = {"status": "unsubscribed", "count": PAGE, "offset": offset}
            if since is not None:
                params["since_last_changed"] = since.replace(microsecond=0).isoformat()
            answer = self.request("GET", f"{self._list}/members", params=params)
            if answer.response is None or answer.response.status_code != 200:
                raise PlatformConfigError(
                    f"mailchimp: listing unsubscribes failed ({answer.reason or 'HTTP '}"
                    f"{'' if answer.response is None else answer.response.status_code})"
                )
            members = (answer.json() or {}).get("members") or []
            for member in members:
                changed = member.get("last_changed") or member.get("timestamp_opt") or ""
                try:
                    at = dt.datetime.fromisoformat(changed.replace("Z", "+00:00"))
                except ValueError:
                    at = dt.datetime.now(dt.UTC)
                yield PlatformUnsubscribe(
                    identifier=str(member.get("email_address", "")),
                    channel="email",
                    occurred_at=at,
                    reason=str(member.get("unsubscribe_reason") or "unsubscribed"),
                )
            if len(members) < PAGE:
                return
            offset += PAGE


def build(sync: SyncDefinition, log: Callable[[str], None]) -> MailchimpClient:
    """The client of a mailchimp sync: key from the env var its config names."""
    config = sync_config(sync, MailchimpConfig, "list_id needed")
    key = config.env("api_key_env", "the Mailchimp API key")
    return MailchimpClient(sync.name, config, key, config.sync_settings(sync),
                           email_field=sync.identifier, log=log)  # fmt: skip


DESTINATION = platform_spec(
    "mailchimp",
    "Mailchimp: list members upserted in batches of 500 (POST /lists/{list_id}), "
    "unsubscribed or archived on removal, permanently deleted on erasure",
    MailchimpConfig,
    # Mailchimp allows 10 simultaneous connections per account
    Limits(batch_rows=BATCH_MAX, max_in_flight=4),
    build,
    errors=(httpx.InvalidURL,),
    reports_unsubscribes=True,
)
