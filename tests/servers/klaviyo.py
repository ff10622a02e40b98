"""A local Klaviyo API (JSON:API, revision header required), written from the documented
endpoints a list sync uses:

* POST /api/profile-bulk-import-jobs — at most 10,000 profiles per job (5 MB), each upserted by
  email / phone_number / external_id and added to the job's lists; 202 with the job (queued);
  GET /api/profile-bulk-import-jobs/{id} (queued → processing → complete, with counts) and
  GET /api/profile-bulk-import-jobs/{id}/import-errors (a pointer to each refused profile);
* GET /api/profiles?filter=any(external_id,[...]) and GET /api/lists/{id}/profiles?filter=...
  (at most 100 values per `any`) — the read-back;
* DELETE /api/lists/{id}/relationships/profiles — at most 1,000 profiles per request, 204;
* POST /api/profile-subscription-bulk-delete-jobs — unsubscribe at most 100 profiles, 202;
* POST /api/data-privacy-deletion-jobs — Request Profile Deletion: exactly one of the profile's
  id, email or phone_number (else 400); every matching profile erased; 202.

Errors in JSON:API shape ({"errors": [{"id", "status", "code", "title", "detail", "source"}]});
429 `throttled` with Retry-After; 503; a write applied and answered too late.
State the tests assert on: `profiles`, `members` (profile ids in the list), `applied` and
`duplicate_imports` (a profile imported again with the same attributes while in the list).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import urllib.parse
from typing import Any

from tests.servers.common import Faults, PlatformServer, Reply, Request, guarded

MAX_PROFILES_PER_JOB = 10_000
MAX_JOB_BYTES = 5 * 1024 * 1024
MAX_LIST_RELATIONSHIPS = 1000
MAX_UNSUBSCRIBE = 100
MAX_FILTER_VALUES = 100
PROFILE_KEYS = ("email", "phone_number", "external_id", "first_name", "last_name", "location")


def _error(status: int, code: str, title: str, detail: str, **source: str) -> Reply:
    error = {"id": "e-1", "status": status, "code": code, "title": title, "detail": detail}
    if source:
        error["source"] = source
    return Reply(status, {"errors": [error]})


class KlaviyoServer(PlatformServer):
    """See the module docstring."""

    def __init__(
        self,
        api_key: str = "pk_test",
        list_id: str = "Y6nRLr",
        faults: Faults | None = None,
        max_profiles_per_job: int = MAX_PROFILES_PER_JOB,
        invalid_ids: set[str] | None = None,
    ) -> None:
        super().__init__(faults)
        self.api_key, self.list_id = api_key, list_id
        # external ids whose email the test marks undeliverable: refused as an invalid email
        self.invalid_ids = set(invalid_ids or ())
        self.max_profiles_per_job = max_profiles_per_job
        self.profiles: dict[str, dict[str, Any]] = {}  # profile id → attributes
        self.members: set[str] = set()
        self.unsubscribed: set[str] = set()  # emails unsubscribed from email marketing
        # profile id -> {reason, timestamp}: suppressed from email marketing at Klaviyo
        self.suppressions: dict[str, dict[str, str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.applied: list[tuple[str, str]] = []  # (import|remove, external_id)
        self.duplicate_imports = 0
        self.requests_over_limit = 0
        self._ids = itertools.count(1)
        self.handle = guarded(self._handle)  # type: ignore[method-assign]

    def suppress(
        self, external_id: str, reason: str = "UNSUBSCRIBE", at: dt.datetime | None = None
    ) -> None:
        """Play a platform-side opt-out: the profile clicks unsubscribe (or complains,
        bounces) at Klaviyo, now or `at` (UTC); its email marketing suppression gets a reason
        and a timestamp."""
        when = (at or dt.datetime.now(dt.UTC)).isoformat()
        with self.lock:
            for p, a in self.profiles.items():
                if a.get("external_id") == external_id:
                    self.suppressions[p] = {"reason": reason, "timestamp": when}

    def member_attributes(self) -> dict[str, dict[str, Any]]:
        """external_id → attributes of every profile in the list."""
        return {self.profiles[p]["external_id"]: self.profiles[p] for p in self.members}

    # --- routing --------------------------------------------------------------------------

    def _handle(self, request: Request) -> Reply:
        if request.headers.get("Authorization") != f"Klaviyo-API-Key {self.api_key}":
            return _error(401, "not_authenticated", "Authentication credentials were not "
                          "provided.", "Missing or invalid private key.")  # fmt: skip
        if not request.headers.get("revision"):
            return _error(400, "invalid", "Invalid input.", "The revision header is required.",
                          parameter="revision")  # fmt: skip
        path, method = request.path, request.method
        body = request.json if isinstance(request.json, dict) else {}
        if method == "POST" and path == "/api/profile-bulk-import-jobs":
            return self._write(lambda: self._import(body, len(request.raw)))
        if method == "GET" and (m := re.fullmatch(r"/api/profile-bulk-import-jobs/(\w+)", path)):
            return self._job(m[1])
        if method == "GET" and (
            m := re.fullmatch(r"/api/profile-bulk-import-jobs/(\w+)/import-errors", path)
        ):
            return self._import_errors(m[1])
        if (
            method == "GET"
            and path == "/api/profiles"
            and "suppression" in request.query.get("filter", "")
        ):
            return self._suppressed(request.query)
        if method == "GET" and path == "/api/profiles":
            return self._profiles(request.query.get("filter", ""), list_only=False)
        if method == "GET" and path == f"/api/lists/{self.list_id}/profiles":
            return self._profiles(request.query.get("filter", ""), list_only=True)
        if method == "DELETE" and path == f"/api/lists/{self.list_id}/relationships/profiles":
            return self._write(lambda: self._remove(body))
        if method == "POST" and path == "/api/profile-subscription-bulk-delete-jobs":
            return self._write(lambda: self._unsubscribe(body))
        if method == "POST" and path == "/api/data-privacy-deletion-jobs":
            return self._write(lambda: self._privacy_delete(body))
        return _error(404, "not_found", "Not found.", f"{method} {path} is not an endpoint.")

    def _write(self, apply: Any) -> Reply:
        fault = self.draw()
        if fault == "rate_limit":
            reply = _error(429, "throttled", "Request was throttled.", "Request was throttled. "
                           "Expected available in 1 second.")  # fmt: skip
            reply.headers["Retry-After"] = str(self.faults.retry_after_seconds)
            return reply
        if fault == "server_error":
            return _error(503, "service_unavailable", "Service unavailable.", "Try again later.")
        with self.lock:
            reply = apply()
        return self.applied_then_late(reply, fault)

    # --- bulk import ------------------------------------------------------------------------

    def _import(self, body: dict[str, Any], size: int) -> Reply:
        data = body.get("data") or {}
        if data.get("type") != "profile-bulk-import-job":
            return _error(400, "invalid", "Invalid input.", "data.type must be "
                          "profile-bulk-import-job", pointer="/data/type")  # fmt: skip
        profiles = (((data.get("attributes") or {}).get("profiles") or {}).get("data")) or []
        if len(profiles) > self.max_profiles_per_job or size > MAX_JOB_BYTES:
            self.requests_over_limit += 1
            return _error(400, "invalid", "Invalid input.", f"A job can hold at most "
                          f"{self.max_profiles_per_job} profiles and 5 MB.",
                          pointer="/data/attributes/profiles/data")  # fmt: skip
        lists = [x.get("id") for x in
                 ((data.get("relationships") or {}).get("lists") or {}).get("data") or []]  # fmt: skip
        job_id = f"job{next(self._ids)}"
        errors = []
        for index, profile in enumerate(profiles):
            attributes = (profile or {}).get("attributes") or {}
            email = attributes.get("email")
            if not (email or attributes.get("phone_number") or attributes.get("external_id")):
                problem = "A profile needs an email, phone_number or external_id."
            elif ((email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email))
                  or attributes.get("external_id") in self.invalid_ids):  # fmt: skip
                problem = f"Invalid email address: {email}"
            else:
                problem = None
            if problem:
                errors.append({"type": "import-error", "id": f"{job_id}-{index}", "attributes": {
                    "code": "invalid", "title": "Invalid input.", "detail": problem,
                    "source": {"pointer": f"/data/attributes/profiles/data/{index}"},
                    "original_payload": attributes}})  # fmt: skip
                continue
            self._upsert({k: attributes[k] for k in PROFILE_KEYS if k in attributes}, lists)
        self.jobs[job_id] = {"status": "queued", "total": len(profiles), "errors": errors}
        return Reply(202, {"data": self._job_body(job_id)})

    def _upsert(self, attributes: dict[str, Any], lists: list[str]) -> None:
        found = next((p for p, a in self.profiles.items()
                      if a.get("external_id") == attributes.get("external_id")), None)  # fmt: skip
        if found is None:
            found = f"01P{next(self._ids):08d}"
            self.profiles[found] = {}
        before = dict(self.profiles[found])
        self.profiles[found].update(attributes)
        if self.list_id in lists:
            if found in self.members and before == self.profiles[found]:
                self.duplicate_imports += 1
            self.members.add(found)
        self.applied.append(("import", str(attributes.get("external_id"))))

    def _job_body(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        done = job["status"] == "complete"
        return {"type": "profile-bulk-import-job", "id": job_id, "attributes": {
            "status": job["status"], "total_count": job["total"],
            "completed_count": job["total"] - len(job["errors"]) if done else 0,
            "failed_count": len(job["errors"]) if done else 0}}  # fmt: skip

    def _job(self, job_id: str) -> Reply:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _error(404, "not_found", "Not found.", f"No job {job_id}.")
            # the platform works through a job in the background: seen processing once
            job["status"] = {"queued": "processing", "processing": "complete"}.get(
                job["status"], job["status"]
            )
            return Reply(200, {"data": self._job_body(job_id)})

    def _import_errors(self, job_id: str) -> Reply:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _error(404, "not_found", "Not found.", f"No job {job_id}.")
            return Reply(200, {"data": job["errors"], "links": {"next": None}})

    # --- read, remove, unsubscribe ----------------------------------------------------------

    def _profiles(self, filter_text: str, list_only: bool) -> Reply:
        match = re.fullmatch(r"any\(external_id,\[(.*)\]\)", filter_text)
        if not match:
            return _error(400, "invalid", "Invalid input.", "Unsupported filter.",
                          parameter="filter")  # fmt: skip
        wanted = re.findall(r'"((?:[^"\\]|\\.)*)"', match[1])
        if len(wanted) > MAX_FILTER_VALUES:
            return _error(400, "invalid", "Invalid input.", "At most 100 values in any().",
                          parameter="filter")  # fmt: skip
        with self.lock:
            found = [
                {"type": "profile", "id": p, "attributes": dict(a)}
                for p, a in self.profiles.items()
                if a.get("external_id") in wanted and (not list_only or p in self.members)
            ]
        return Reply(200, {"data": found, "links": {"next": None}})

    def _suppressed(self, query: dict[str, str]) -> Reply:
        """Get Profiles filtered by
        `greater-than(subscriptions.email.marketing.suppression.timestamp,<ISO 8601>)`, sorted by
        that timestamp, `page[size]` ≤ 100, `page[cursor]`, `links.next`; with
        `additional-fields[profile]=subscriptions` each profile carries its subscriptions."""
        match = re.fullmatch(
            r"greater-than\(subscriptions\.email\.marketing\.suppression\.timestamp,([^)]+)\)",
            query.get("filter", ""),
        )
        if not match:
            return _error(400, "invalid", "Invalid input.", "Unsupported filter.",
                          parameter="filter")  # fmt: skip
        try:
            since = dt.datetime.fromisoformat(match[1].strip().strip('"').replace("Z", "+00:00"))
        except ValueError:
            return _error(400, "invalid", "Invalid input.", "Invalid datetime.",
                          parameter="filter")  # fmt: skip
        size = int(query.get("page[size]", "20"))
        if not 1 <= size <= MAX_FILTER_VALUES:
            return _error(400, "invalid", "Invalid input.", "page[size] must be 1-100.",
                          parameter="page[size]")  # fmt: skip
        start = int(query.get("page[cursor]", "0") or 0)
        subscriptions = "subscriptions" in query.get("additional-fields[profile]", "")
        with self.lock:
            hits = sorted(
                (s["timestamp"], p) for p, s in self.suppressions.items()
                if p in self.profiles and dt.datetime.fromisoformat(s["timestamp"]) > since
            )  # fmt: skip
            page = []
            for _, p in hits[start : start + size]:
                attributes = dict(self.profiles[p])
                if subscriptions:
                    attributes["subscriptions"] = {"email": {"marketing": {
                        "can_receive_email_marketing": False,
                        "suppression": [dict(self.suppressions[p])]}}}  # fmt: skip
                page.append({"type": "profile", "id": p, "attributes": attributes})
        following = None
        if start + size < len(hits):
            following = f"{self.url}/api/profiles?" + urllib.parse.urlencode(
                {**query, "page[cursor]": str(start + size)}
            )
        return Reply(200, {"data": page, "links": {"next": following}})

    def _remove(self, body: dict[str, Any]) -> Reply:
        data = body.get("data")
        if not isinstance(data, list) or not data:
            return _error(400, "invalid", "Invalid input.", "data is required", pointer="/data")
        if len(data) > MAX_LIST_RELATIONSHIPS:
            self.requests_over_limit += 1
            return _error(400, "invalid", "Invalid input.", "At most 1000 profiles.",
                          pointer="/data")  # fmt: skip
        for item in data:
            profile = item.get("id")
            if profile in self.members:
                self.members.discard(profile)
                self.applied.append(("remove", str(self.profiles[profile].get("external_id"))))
        return Reply(204)

    def _privacy_delete(self, body: dict[str, Any]) -> Reply:
        """Request Profile Deletion: exactly one of the profile's `id`, `email` or
        `phone_number`; every matching profile is erased; 202 without a body."""
        data = body.get("data") or {}
        if data.get("type") != "data-privacy-deletion-job":
            return _error(400, "invalid", "Invalid input.", "data.type must be "
                          "data-privacy-deletion-job", pointer="/data/type")  # fmt: skip
        profile = (((data.get("attributes") or {}).get("profile") or {}).get("data")) or {}
        keys = {k: v for k, v in (profile.get("attributes") or {}).items()
                if k in ("email", "phone_number") and v}  # fmt: skip
        if profile.get("id"):
            keys["id"] = profile["id"]
        if len(keys) != 1:
            return _error(400, "invalid", "Invalid input.", "Exactly one of email, phone_number "
                          "or id is required.", pointer="/data/attributes/profile")  # fmt: skip
        ((kind, value),) = keys.items()
        matches = [p for p, a in self.profiles.items()
                   if (p == value if kind == "id" else a.get(kind) == value)]  # fmt: skip
        for p in matches:
            self.applied.append(("privacy_delete", str(self.profiles[p].get("external_id"))))
            self.members.discard(p)
            del self.profiles[p]
        return Reply(202)

    def _unsubscribe(self, body: dict[str, Any]) -> Reply:
        data = body.get("data") or {}
        profiles = (((data.get("attributes") or {}).get("profiles") or {}).get("data")) or []
        if len(profiles) > MAX_UNSUBSCRIBE:
            self.requests_over_limit += 1
            return _error(400, "invalid", "Invalid input.", "At most 100 profiles.",
                          pointer="/data/attributes/profiles/data")  # fmt: skip
        for profile in profiles:
            email = (profile.get("attributes") or {}).get("email")
            if email:
                self.unsubscribed.add(email)
        return Reply(202)
