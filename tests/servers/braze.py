"""A local Braze REST server, written from Braze's published API documentation, with faults.

Implements (bearer auth, `Authorization: Bearer <REST API key>`, else 401):
* POST /users/track — at most 75 attribute objects (more: 400 with a fatal message); each object
  needs external_id; `subscription_groups` entries set the user's state in those groups; an
  object Braze cannot take (an invalid email, or an external id the test marks invalid) is left
  out and named in `errors: [{type, input_array: "attributes", index}]`; the answer is 201
  `{"message": "success", "attributes_processed": n, "errors": [...]}`.
* POST /subscription/status/set — `subscription_group_id`, `subscription_state`
  (subscribed|unsubscribed), at most 50 `external_id`s; 201 `{"message": "success"}`.
* POST /users/export/ids — at most 50 external_ids; 201 `{"users": [...], "invalid_user_ids":
  [...], "message": "success"}` with `custom_attributes` when asked in fields_to_export.
* POST /users/delete — at most 50 external_ids; 202 `{"deleted": n, "message": "success"}`.

Faults (tests.servers.common.Faults) are drawn per write request: 429 with Retry-After, a 5xx,
or applied and then answered too late for the client. State the tests read: `users`
(external_id → attributes, custom attributes included), `groups` ((group, external_id) → state),
`applied` (Counter of (external_id, c360 key attribute) per attribute object applied).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from tests.servers.common import Faults, PlatformServer, Reply, Request, guarded

TRACK_MAX, IDS_MAX = 75, 50
STANDARD = {"email", "first_name", "last_name", "phone", "country", "home_city", "dob", "gender",
            "language", "external_id", "subscription_groups", "email_subscribe"}  # fmt: skip
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class BrazeServer(PlatformServer):
    def __init__(
        self, api_key: str, faults: Faults | None = None, invalid_ids: set[str] | None = None
    ) -> None:
        super().__init__(faults)
        self.api_key, self.invalid_ids = api_key, set(invalid_ids or ())
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[tuple[str, str], str] = {}
        self.applied: Counter[tuple[str, str | None]] = Counter()
        self.state_changes: list[tuple[str, str, str]] = []  # (group, external_id, new state)
        self.deleted: list[str] = []
        self.handle = guarded(self._handle)  # type: ignore[method-assign]

    def subscribed(self, group: str) -> set[str]:
        with self.lock:
            return {u for (g, u), s in self.groups.items() if g == group and s == "subscribed"}

    def _handle(self, request: Request) -> Reply:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"message": "Invalid API key: the key is not valid"})
        body = request.json if isinstance(request.json, dict) else None
        if request.method != "POST" or body is None:
            return Reply(404 if body is not None else 400, {"message": "not found"})
        route = {
            "/users/track": self._track,
            "/subscription/status/set": self._status_set,
            "/users/export/ids": self._export,
            "/users/delete": self._delete,
        }.get(request.path)
        if route is None:
            return Reply(404, {"message": "not found"})
        if request.path == "/users/export/ids":
            return route(body)
        fault = self.draw()
        if fault == "rate_limit":
            return Reply(429, {"message": "API rate limit reached"},
                         {"Retry-After": str(self.faults.retry_after_seconds)})  # fmt: skip
        if fault == "server_error":
            return Reply(503, {"message": "service unavailable"})
        return self.applied_then_late(route(body), fault)

    def _track(self, body: dict[str, Any]) -> Reply:
        objects = body.get("attributes") or []
        if not isinstance(objects, list) or len(objects) > TRACK_MAX:
            return Reply(400, {"message": f"Too many attribute objects: at most {TRACK_MAX}"})
        errors, processed = [], 0
        with self.lock:
            for index, obj in enumerate(objects):
                external_id = obj.get("external_id") if isinstance(obj, dict) else None
                if not external_id:
                    errors.append({"type": "'external_id' or 'braze_id' or 'user_alias' is "
                                   "required", "input_array": "attributes", "index": index})  # fmt: skip
                    continue
                email = obj.get("email")
                if external_id in self.invalid_ids or (email and not EMAIL.match(str(email))):
                    errors.append({"type": f"Invalid 'email' attribute on object {index}",
                                   "input_array": "attributes", "index": index})  # fmt: skip
                    continue
                user = self.users.setdefault(external_id, {"custom_attributes": {}})
                key = None
                for name, value in obj.items():
                    if name == "subscription_groups":
                        for entry in value:
                            self._set(entry["subscription_group_id"], external_id,
                                      entry["subscription_state"])  # fmt: skip
                    elif name in STANDARD:
                        user[name] = value
                    else:
                        user["custom_attributes"][name] = value
                        if name.startswith("c360_key__"):
                            key = value
                self.applied[(external_id, key)] += 1
                processed += 1
        answer: dict[str, Any] = {"message": "success", "attributes_processed": processed}
        if errors:
            answer["errors"] = errors
        return Reply(201, answer)

    def _set(self, group: str, external_id: str, state: str) -> None:
        if self.groups.get((group, external_id)) != state:
            self.groups[(group, external_id)] = state
            self.state_changes.append((group, external_id, state))

    def _status_set(self, body: dict[str, Any]) -> Reply:
        ids, state = body.get("external_id") or [], body.get("subscription_state")
        group = body.get("subscription_group_id")
        if not group or state not in ("subscribed", "unsubscribed"):
            return Reply(400, {"message": "subscription_group_id and subscription_state required"})
        if not isinstance(ids, list) or not 1 <= len(ids) <= IDS_MAX:
            return Reply(400, {"message": f"external_id: between 1 and {IDS_MAX} ids"})
        with self.lock:
            for external_id in ids:
                self._set(group, external_id, state)
        return Reply(201, {"message": "success"})

    def _export(self, body: dict[str, Any]) -> Reply:
        ids = body.get("external_ids") or []
        if not isinstance(ids, list) or len(ids) > IDS_MAX:
            return Reply(400, {"message": f"external_ids: at most {IDS_MAX}"})
        fields = body.get("fields_to_export") or []
        with self.lock:
            users = []
            for external_id in ids:
                if external_id in self.users:
                    user = {"external_id": external_id}
                    for name in fields:
                        if name in self.users[external_id]:
                            user[name] = self.users[external_id][name]
                    users.append(user)
        invalid = [i for i in ids if i not in self.users]
        return Reply(201, {"users": users, "invalid_user_ids": invalid, "message": "success"})

    def _delete(self, body: dict[str, Any]) -> Reply:
        ids = body.get("external_ids") or []
        if not isinstance(ids, list) or not 1 <= len(ids) <= IDS_MAX:
            return Reply(400, {"message": f"external_ids: between 1 and {IDS_MAX} ids"})
        deleted = 0
        with self.lock:
            for external_id in ids:
                if self.users.pop(external_id, None) is not None:
                    deleted += 1
                    self.deleted.append(external_id)
                for key in [k for k in self.groups if k[1] == external_id]:
                    del self.groups[key]
        return Reply(202, {"deleted": deleted, "message": "success"})
