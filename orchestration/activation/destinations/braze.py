"""Braze destination: the audience is a subscription group; each person a Braze user keyed by
external_id (the sync's identifier). Documented API used (REST, `Authorization: Bearer <key>`):

* add/update — POST /users/track: at most 75 attribute objects per request, each the person's
  fields plus `subscription_groups: [{subscription_group_id, subscription_state: "subscribed"}]`
  and a custom attribute `c360_key__<sync>` holding the row's idempotency key. Success is 201
  (202 `queued` in maintenance), and a partly bad request is still 201 with
  `errors: [{type, input_array: "attributes", index}]`: the rows at those indexes are rejected
  with Braze's `type`, the others applied.
* remove from the audience — POST /subscription/status/set with `subscription_state:
  "unsubscribed"` and at most 50 `external_id`s (a state set: sending it again changes nothing).
* read back (a timeout may have applied a request) — POST /users/export/ids, at most 50
  external_ids, `fields_to_export: ["external_id", "custom_attributes"]`: a user whose
  `c360_key__<sync>` equals the row's key holds the row, so it is not sent again.
* erase — `delete(identifiers)`: POST /users/delete, at most 50 external_ids per request.

The key comes from the env var the sync names (`config.api_key_env`), never from the YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import StringConstraints

from orchestration.activation.destinations._platform_spec import platform_spec, sync_config
from orchestration.activation.destinations.http_platform import (
    Answer,
    ClientSettings,
    PlatformClient,
    PlatformConfig,
    RowResult,
    chunks,
)
from orchestration.activation.destinations.registry import Limits
from orchestration.activation.destinations.rows import Outcome, Row
from orchestration.activation.sync_definition import EnvName

if TYPE_CHECKING:
    from orchestration.activation.sync_definition import SyncDefinition

TRACK_MAX = 75  # attribute objects per /users/track request
IDS_MAX = 50  # external_ids per /subscription/status/set, /users/export/ids, /users/delete


class BrazeConfig(PlatformConfig):
    """A braze sync's `config:`: the REST endpoint of its instance (https), the env var holding
    the REST API key, and the subscription group that is the audience."""

    https_only = True

    api_key_env: EnvName = "C360_BRAZE_API_KEY"
    # Braze's group ids are UUIDs; any non-blank value (stray spaces trimmed) goes to Braze to judge
    subscription_group_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class BrazeClient(PlatformClient):
    """One braze sync's client; see the module docstring."""

    platform = "braze"

    def __init__(self, sync: str, config: BrazeConfig, key: str, settings: ClientSettings,
                 **kwargs: Any) -> None:  # fmt: skip
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        super().__init__(sync, config.endpoint, headers, settings, secrets=[key], **kwargs)
        self.config, self.auth_env = config, config.api_key_env
        self.key_attribute = f"c360_key__{sync}"

    def batch_rows(self, op: str) -> int:
        return TRACK_MAX if op == "upsert" else IDS_MAX

    def apply(self, op: str, rows: list[Row]) -> list[RowResult] | Answer:
        if op == "delete":
            return self._unsubscribe(rows)
        group = {
            "subscription_group_id": self.config.subscription_group_id,
            "subscription_state": "subscribed",
        }
        attributes = [
            {**row.fields, "external_id": row.identifier,
             self.key_attribute: row.idempotency_key, "subscription_groups": [group]}
            for row in rows
        ]  # fmt: skip
        answer = self.request("POST", "/users/track", json={"attributes": attributes})
        if answer.response is None or answer.response.status_code not in (200, 201, 202):
            return answer
        body = answer.json() or {}
        errors: dict[int, str] = {}
        for error in body.get("errors") or []:
            if isinstance(error, dict) and error.get("input_array", "attributes") == "attributes":
                index = error.get("index")
                if isinstance(index, int) and 0 <= index < len(rows):
                    errors[index] = str(error.get("type") or "rejected by braze")
        if body.get("message") not in ("success", "queued") and not errors:
            return answer  # a fatal error in a 2xx body: treated as a refusal of the request
        return [("rejected", errors[i]) if i in errors else ("ok", "") for i in range(len(rows))]

    def _unsubscribe(self, rows: list[Row]) -> list[RowResult] | Answer:
        answer = self.request(
            "POST",
            "/subscription/status/set",
            json={
                "subscription_group_id": self.config.subscription_group_id,
                "subscription_state": "unsubscribed",
                "external_id": [row.identifier for row in rows],
            },
        )
        if answer.response is None or answer.response.status_code not in (200, 201, 202):
            return answer
        return [("ok", "")] * len(rows)

    def read_back(self, rows: list[Row]) -> dict[str, bool | None]:
        """Upserts: held when the user's key attribute is the row's key. Removals cannot be
        read back (the export has no subscription groups): None, so they are resent, which
        sets the same state again."""
        held: dict[str, bool | None] = {}
        upserts = [row for row in rows if row.op == "upsert"]
        for part in chunks(upserts, IDS_MAX):
            answer = self.request(
                "POST",
                "/users/export/ids",
                json={
                    "external_ids": [row.identifier for row in part],
                    "fields_to_export": ["external_id", "custom_attributes"],
                },
            )
            if answer.response is None or answer.response.status_code not in (200, 201):
                continue
            users = {
                user.get("external_id"): (user.get("custom_attributes") or {})
                for user in (answer.json() or {}).get("users") or []
                if isinstance(user, dict)
            }
            for row in part:
                found = users.get(row.identifier)
                held[row.idempotency_key] = (
                    found is not None and found.get(self.key_attribute) == row.idempotency_key
                )
        return held

    def delete(self, identifiers: Sequence[str]) -> dict[str, Outcome]:
        """Erase each person's Braze user (POST /users/delete); an outcome per identifier."""
        outcomes: dict[str, Outcome] = {}
        for part in chunks(list(identifiers), IDS_MAX):
            answer = self.request("POST", "/users/delete", json={"external_ids": list(part)})
            outcome = self.outcome(answer, 200, 201, 202)
            for identifier in part:
                outcomes[identifier] = Outcome(outcome.status, outcome.reason, 1)
        return outcomes


def build(sync: SyncDefinition, log: Callable[[str], None]) -> BrazeClient:
    """The client of a braze sync: key from the env var its config names."""
    config = sync_config(sync, BrazeConfig, "subscription_group_id needed")
    key = config.env("api_key_env", "the Braze REST API key")
    return BrazeClient(sync.name, config, key, config.sync_settings(sync), log=log)


DESTINATION = platform_spec(
    "braze",
    "Braze: users tracked with /users/track into a subscription group (unsubscribed on "
    "removal), erased with /users/delete",
    BrazeConfig,
    # /users/track: 75 attribute objects per request; 3,000 requests per 3 seconds
    Limits(batch_rows=TRACK_MAX, max_in_flight=4, rate_per_second=1000),
    build,
)
