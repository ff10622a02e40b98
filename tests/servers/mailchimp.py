"""A local Mailchimp Marketing API (v3) server, written from Mailchimp's published documentation,
with faults. Served under /3.0 like the real API root (https://<dc>.api.mailchimp.com/3.0).

Implements (HTTP basic auth with the API key as password, or `Bearer <token>`; else 401):
* POST /3.0/lists/{list_id} — batch subscribe or unsubscribe: at most 500 members (more: 400),
  `update_existing`; a member Mailchimp cannot take (an invalid email, or one the test marks
  invalid) is named in `errors: [{email_address, error, error_code}]` and the answer is still
  200 with `new_members`, `updated_members`, `total_created`, `total_updated`, `error_count`.
* GET /3.0/lists/{list_id}/members/{subscriber_hash} — the member, or 404.
* DELETE /3.0/lists/{list_id}/members/{subscriber_hash} — archive: 204, or 404.
* POST /3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent — 204, or 404.
* GET /3.0/lists/{list_id}/members?status=&since_last_changed=&count=&offset= — a page.

subscriber_hash = MD5 of the lower-cased email. Faults (tests.servers.common.Faults) are drawn per
write request. State the tests read: `members` (hash → member), `applied` (Counter of each member
write by (hash, status, merge fields)), `unsubscribe(email)` to play a platform-side opt-out.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections import Counter
from typing import Any

from tests.servers.common import Faults, PlatformServer, Reply, Request, guarded

BATCH_MAX = 500
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MEMBER = re.compile(r"^/3\.0/lists/(?P<list>[^/]+)/members/(?P<hash>[0-9a-f]{32})(?P<rest>/.*)?$")


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class MailchimpServer(PlatformServer):
    def __init__(
        self,
        api_key: str,
        list_id: str,
        faults: Faults | None = None,
        invalid_emails: set[str] | None = None,
    ) -> None:
        super().__init__(faults)
        self.api_key, self.list_id = api_key, list_id
        self.invalid_emails = {e.lower() for e in invalid_emails or ()}
        self.members: dict[str, dict[str, Any]] = {}
        self.applied: Counter[tuple[str, str, str]] = Counter()
        self.handle = guarded(self._handle)  # type: ignore[method-assign]

    def with_status(self, status: str) -> set[str]:
        """Lower-cased emails of the members with `status`."""
        with self.lock:
            return {m["email_address"].lower() for m in self.members.values()
                    if m["status"] == status}  # fmt: skip

    def unsubscribe(self, email: str, at: dt.datetime | None = None) -> None:
        """A member unsubscribes at Mailchimp (the link in a campaign), now or `at` (UTC)."""
        when = at.replace(microsecond=0).isoformat() if at is not None else _now()
        with self.lock:
            member = self.members[subscriber_hash(email)]
            member.update(status="unsubscribed", last_changed=when,
                          unsubscribe_reason="N/A (Unsubscribed from a campaign)")  # fmt: skip

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization") or ""
        if header == f"Bearer {self.api_key}":
            return True
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except ValueError:
                return False
            return decoded.partition(":")[2] == self.api_key
        return False

    def _handle(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(401, {"title": "API Key Invalid", "status": 401,
                               "detail": "Your API key may be invalid, or you've attempted to "
                               "access the wrong datacenter."})  # fmt: skip
        batch_path = f"/3.0/lists/{self.list_id}"
        if request.method == "GET" and request.path == batch_path + "/members":
            return self._list_members(request.query)
        member = MEMBER.match(request.path)
        if (member and member["list"] != self.list_id) or (
            not member and request.path != batch_path
        ):
            return Reply(404, {"title": "Resource Not Found", "status": 404})
        if request.method == "GET" and member and not member["rest"]:
            return self._get(member["hash"])
        fault = self.draw()
        if fault == "rate_limit":
            return Reply(429, {"title": "Too Many Requests", "status": 429,
                               "detail": "You have exceeded the limit of 10 simultaneous "
                               "connections."},
                         {"Retry-After": str(self.faults.retry_after_seconds)})  # fmt: skip
        if fault == "server_error":
            return Reply(500, {"title": "Internal Server Error", "status": 500})
        if request.method == "POST" and not member:
            reply = self._batch(request.json)
        elif request.method == "DELETE" and member and not member["rest"]:
            reply = self._archive(member["hash"])
        elif request.method == "POST" and member and member["rest"] == "/actions/delete-permanent":
            reply = self._delete_permanent(member["hash"])
        else:
            return Reply(405, {"title": "Method Not Allowed", "status": 405})
        return self.applied_then_late(reply, fault)

    def _batch(self, body: Any) -> Reply:
        members = body.get("members") if isinstance(body, dict) else None
        if not isinstance(members, list) or len(members) > BATCH_MAX:
            return Reply(400, {"title": "Invalid Resource", "status": 400,
                               "detail": f"members: at most {BATCH_MAX} per request"})  # fmt: skip
        update = bool(body.get("update_existing"))
        new, updated, errors = [], [], []
        with self.lock:
            for entry in members:
                email = str(entry.get("email_address") or "")
                status = entry.get("status")
                if not EMAIL.match(email) or email.lower() in self.invalid_emails:
                    errors.append({"email_address": email, "error": f"{email} looks fake or "
                                   "invalid, please enter a real email address.",
                                   "error_code": "ERROR_GENERIC"})  # fmt: skip
                    continue
                if status not in ("subscribed", "unsubscribed", "cleaned", "pending",
                                  "transactional"):  # fmt: skip
                    errors.append({"email_address": email, "error": "Invalid status",
                                   "error_code": "ERROR_GENERIC"})  # fmt: skip
                    continue
                key = subscriber_hash(email)
                existing = self.members.get(key)
                if existing is not None and not update:
                    errors.append({"email_address": email, "error": f"{email} is already a list "
                                   "member.", "error_code": "ERROR_CONTACT_EXISTS"})  # fmt: skip
                    continue
                member = existing or {"id": key, "email_address": email, "merge_fields": {}}
                member["status"] = status
                member["merge_fields"] = {**member["merge_fields"],
                                          **(entry.get("merge_fields") or {})}  # fmt: skip
                member["last_changed"] = _now()
                self.members[key] = member
                fields = json.dumps(member["merge_fields"], sort_keys=True)
                self.applied[(key, status, fields)] += 1
                (updated if existing is not None else new).append(dict(member))
        return Reply(200, {"new_members": new, "updated_members": updated, "errors": errors,
                           "total_created": len(new), "total_updated": len(updated),
                           "error_count": len(errors)})  # fmt: skip

    def _get(self, key: str) -> Reply:
        with self.lock:
            member = self.members.get(key)
            if member is None:
                return Reply(404, {"title": "Resource Not Found", "status": 404})
            return Reply(200, dict(member))

    def _archive(self, key: str) -> Reply:
        with self.lock:
            member = self.members.get(key)
            if member is None or member["status"] == "archived":
                return Reply(404, {"title": "Resource Not Found", "status": 404})
            member.update(status="archived", last_changed=_now())
            fields = json.dumps(member["merge_fields"], sort_keys=True)
            self.applied[(key, "archived", fields)] += 1
        return Reply(204)

    def _delete_permanent(self, key: str) -> Reply:
        with self.lock:
            if self.members.pop(key, None) is None:
                return Reply(404, {"title": "Resource Not Found", "status": 404})
        return Reply(204)

    def _list_members(self, query: dict[str, str]) -> Reply:
        count, offset = int(query.get("count", 10)), int(query.get("offset", 0))
        since = query.get("since_last_changed")
        with self.lock:
            rows = [dict(m) for m in self.members.values()
                    if (not query.get("status") or m["status"] == query["status"])
                    and (not since or m["last_changed"] >= since)]  # fmt: skip
        rows.sort(key=lambda m: m["id"])
        page = rows[offset : offset + count]
        return Reply(200, {"members": page, "list_id": self.list_id, "total_items": len(rows)})
