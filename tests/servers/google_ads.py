"""A local Google Ads API (REST, v21) for Customer Match uploads, written from the documented
OfflineUserDataJobService flow: create a CUSTOMER_MATCH_USER_LIST job, add create/remove
operations to it (at most MAX_IDENTIFIERS_PER_REQUEST user identifiers per request, at most
MAX_IDENTIFIERS_PER_USER_DATA per operation, partial failure in GoogleAdsFailure's shape with
`operations[i]` locations), run it (a long-running operation), and read its status with a
GoogleAdsService search. Nothing reaches the user list until the job runs.

EEA consent (`Consent`: adUserData, adPersonalization, each a ConsentStatus) may be set on the
job (`customerMatchUserListMetadata.consent`, for all its users) and on a UserData (overriding
the job's for that user); an unknown status is INVALID_ARGUMENT. A create whose effective
adUserData is DENIED is not added to the list.

State the tests assert on: `lists[user_list]` (members keyed by their identifiers), `applied`
(every operation applied when a job ran), `consents` (member key → the effective consent it was
added with) and `creates_without_consent`. Faults per write request (create, add,
run): 429 RESOURCE_EXHAUSTED with Retry-After, 503 UNAVAILABLE, or applied and answered late.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tests.servers.common import Faults, PlatformServer, Reply, Request, guarded

VERSION = "v21"
MAX_IDENTIFIERS_PER_REQUEST = 100_000
MAX_IDENTIFIERS_PER_USER_DATA = 20
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CONSENT_STATUSES = {"UNSPECIFIED", "UNKNOWN", "GRANTED", "DENIED"}
FAILURE_TYPE = f"type.googleapis.com/google.ads.googleads.{VERSION}.errors.GoogleAdsFailure"


@dataclass
class Job:
    resource_name: str
    user_list: str
    status: str = "PENDING"  # PENDING → RUNNING → SUCCESS | FAILED
    operations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    consent: dict[str, str] = field(default_factory=dict)
    polls_running: int = 0


def member_key(user_data: dict[str, Any]) -> tuple[str, ...]:
    """A member's identity: its identifiers as sorted canonical JSON texts."""
    return tuple(sorted(json.dumps(i, sort_keys=True) for i in user_data["userIdentifiers"]))


def _error(status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> Reply:
    failure = {"@type": FAILURE_TYPE, "errors": [{"errorCode": extra or {}, "message": message}]}
    body = {"error": {"code": status, "message": message, "status": code, "details": [failure]}}
    return Reply(status, body)


class GoogleAdsServer(PlatformServer):
    """See the module docstring. `max_identifiers_per_request` lowers the documented ceiling so
    a test exercises the client's splitting."""

    def __init__(
        self,
        customer_id: str = "1234567890",
        user_list_id: str = "555",
        developer_token: str = "dev-token",
        access_token: str = "access-token",
        faults: Faults | None = None,
        max_identifiers_per_request: int = MAX_IDENTIFIERS_PER_REQUEST,
    ) -> None:
        super().__init__(faults)
        self.customer_id, self.developer_token, self.access_token = (
            customer_id, developer_token, access_token,
        )  # fmt: skip
        self.user_list = f"customers/{customer_id}/userLists/{user_list_id}"
        self.max_identifiers_per_request = max_identifiers_per_request
        self.lists: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {self.user_list: {}}
        self.jobs: dict[str, Job] = {}
        self.applied: list[tuple[str, tuple[str, ...]]] = []  # (create|remove, member key)
        self.duplicate_creates = 0  # a create of a member already in the list
        self.consents: dict[tuple[str, ...], dict[str, str]] = {}
        self.creates_without_consent = 0
        self.requests_over_limit = 0
        self._ids = itertools.count(1000)
        self.handle = guarded(self._handle)  # type: ignore[method-assign]

    @property
    def members(self) -> dict[tuple[str, ...], dict[str, Any]]:
        return self.lists[self.user_list]

    def hashed_emails(self) -> set[str]:
        """Every hashed email held by the user list."""
        return {
            i["hashedEmail"]
            for m in self.members.values()
            for i in m["userIdentifiers"]
            if "hashedEmail" in i
        }

    # --- routing --------------------------------------------------------------------------

    def _handle(self, request: Request) -> Reply:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return _error(401, "UNAUTHENTICATED", "Request is missing required authentication "
                          "credential.", {"authenticationError": "AUTHENTICATION_ERROR"})  # fmt: skip
        if request.headers.get("developer-token") != self.developer_token:
            return _error(401, "UNAUTHENTICATED", "The developer token is not valid.",
                          {"authenticationError": "DEVELOPER_TOKEN_INVALID"})  # fmt: skip
        prefix = f"/{VERSION}/customers/{self.customer_id}/"
        if request.method != "POST" or not request.path.startswith(prefix):
            return _error(404, "NOT_FOUND", f"no such method {request.path}")
        rest = request.path.removeprefix(prefix)
        body = request.json if isinstance(request.json, dict) else {}
        if rest == "googleAds:search":
            return self._search(body)
        if rest == "offlineUserDataJobs:create":
            return self._write(lambda: self._create(body))
        match = re.fullmatch(r"offlineUserDataJobs/(\d+):(addOperations|run)", rest)
        if not match:
            return _error(404, "NOT_FOUND", f"no such method {request.path}")
        name = f"customers/{self.customer_id}/offlineUserDataJobs/{match[1]}"
        with self.lock:
            job = self.jobs.get(name)
        if job is None:
            return _error(404, "NOT_FOUND", f"{name} not found",
                          {"requestError": "RESOURCE_NAME_MALFORMED"})  # fmt: skip
        if match[2] == "addOperations":
            return self._write(lambda: self._add(job, body))
        return self._write(lambda: self._run(job))

    def _write(self, apply: Any) -> Reply:
        fault = self.draw()
        if fault == "rate_limit":
            reply = _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check "
                           "quota).", {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"})  # fmt: skip
            reply.headers["Retry-After"] = str(self.faults.retry_after_seconds)
            return reply
        if fault == "server_error":
            return _error(503, "UNAVAILABLE", "The service is currently unavailable.",
                          {"internalError": "TRANSIENT_ERROR"})  # fmt: skip
        with self.lock:
            reply = apply()
        return self.applied_then_late(reply, fault)

    # --- the methods ------------------------------------------------------------------------

    def _create(self, body: dict[str, Any]) -> Reply:
        job = body.get("job") or {}
        user_list = (job.get("customerMatchUserListMetadata") or {}).get("userList")
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST" or user_list not in self.lists:
            return _error(400, "INVALID_ARGUMENT", "job.type must be CUSTOMER_MATCH_USER_LIST "
                          "with an existing userList", {"offlineUserDataJobError":
                          "INVALID_USER_LIST_ID"})  # fmt: skip
        consent = (job.get("customerMatchUserListMetadata") or {}).get("consent") or {}
        if not _valid_consent(consent):
            return _error(400, "INVALID_ARGUMENT", "Invalid consent status.",
                          {"requestError": "INVALID_ENUM_VALUE"})  # fmt: skip
        name = f"customers/{self.customer_id}/offlineUserDataJobs/{next(self._ids)}"
        self.jobs[name] = Job(name, user_list, consent=dict(consent))
        return Reply(200, {"resourceName": name})

    def _add(self, job: Job, body: dict[str, Any]) -> Reply:
        if job.status != "PENDING":
            return _error(400, "INVALID_ARGUMENT", "Operations can only be added to a PENDING "
                          "job.", {"offlineUserDataJobError":
                          "INVALID_JOB_STATUS"})  # fmt: skip
        operations = body.get("operations")
        if not isinstance(operations, list) or not operations:
            return _error(400, "INVALID_ARGUMENT", "operations is required",
                          {"requestError": "REQUIRED_FIELD_MISSING"})  # fmt: skip
        total = sum(len((o.get("create") or o.get("remove") or {}).get("userIdentifiers") or [])
                    for o in operations)  # fmt: skip
        if total > self.max_identifiers_per_request:
            self.requests_over_limit += 1
            return _error(400, "INVALID_ARGUMENT", "Maximum number of user identifiers allowed "
                          f"per request is {self.max_identifiers_per_request:,} and per "
                          f"operation is {MAX_IDENTIFIERS_PER_USER_DATA}.",
                          {"offlineUserDataJobError": "TOO_MANY_USER_IDENTIFIERS"})  # fmt: skip
        errors, accepted = [], []
        for index, operation in enumerate(operations):
            kind = "create" if "create" in operation else "remove" if "remove" in operation else ""
            problem = self._invalid(operation.get(kind) if kind else None)
            if problem:
                errors.append({"errorCode": {"offlineUserDataJobError": problem[0]},
                               "message": problem[1], "location": {"fieldPathElements": [
                                   {"fieldName": "operations", "index": index},
                                   {"fieldName": kind or "operation"}]}})  # fmt: skip
                continue
            accepted.append((kind, operation[kind]))
        if errors and not body.get("enablePartialFailure"):
            failure = {"@type": FAILURE_TYPE, "errors": errors}
            return Reply(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                         "message": "Request contains an invalid argument.",
                                         "details": [failure]}})  # fmt: skip
        job.operations.extend(accepted)
        reply: dict[str, Any] = {}
        if errors:
            reply["partialFailureError"] = {
                "code": 3,
                "message": f"Multiple errors in 'details'. First error: {errors[0]['message']}",
                "details": [{"@type": FAILURE_TYPE, "errors": errors}],
            }
        return Reply(200, reply)

    @staticmethod
    def _invalid(user_data: Any) -> tuple[str, str] | None:
        if not isinstance(user_data, dict) or not user_data.get("userIdentifiers"):
            return "INVALID_USER_IDENTIFIER", "The operation has no user identifiers."
        if not _valid_consent(user_data.get("consent") or {}):
            return "INVALID_ENUM_VALUE", "Invalid consent status on the user data."
        identifiers = user_data["userIdentifiers"]
        if len(identifiers) > MAX_IDENTIFIERS_PER_USER_DATA:
            return "TOO_MANY_USER_IDENTIFIERS", "Too many user identifiers in one operation."
        for item in identifiers:
            for key in ("hashedEmail", "hashedPhoneNumber"):
                if key in item and not SHA256.match(str(item[key])):
                    return "INVALID_SHA256_FORMAT", f"{key} is not a SHA-256 hex digest."
            address = item.get("addressInfo")
            if address is not None:
                for key in ("hashedFirstName", "hashedLastName"):
                    if not SHA256.match(str(address.get(key, ""))):
                        return "INVALID_SHA256_FORMAT", f"addressInfo.{key} is not hashed."
                if not re.fullmatch(r"[A-Z]{2}", str(address.get("countryCode", ""))):
                    return "INVALID_COUNTRY_CODE", "addressInfo.countryCode is not alpha-2."
        return None

    def _run(self, job: Job) -> Reply:
        if job.status != "PENDING":
            return _error(400, "FAILED_PRECONDITION", "The job has already been run.",
                          {"offlineUserDataJobError": "INVALID_JOB_STATUS"})  # fmt: skip
        job.status = "RUNNING"
        members = self.lists[job.user_list]
        for kind, user_data in job.operations:
            key = member_key(user_data)
            if kind == "create":
                consent = {**job.consent, **(user_data.get("consent") or {})}
                if consent.get("adUserData") not in ("GRANTED", "DENIED"):
                    self.creates_without_consent += 1
                if consent.get("adUserData") == "DENIED":
                    continue  # no consent to use this person's data: not added
                if key in members:
                    self.duplicate_creates += 1
                members[key] = user_data
                self.consents[key] = consent
            else:
                # a remove takes out every member sharing an identifier with it
                gone = [k for k in members if set(k) & set(key)]
                for k in gone:
                    del members[k]
            self.applied.append((kind, key))
        operation = f"customers/{self.customer_id}/operations/{next(self._ids)}"
        return Reply(200, {"name": operation})

    def _search(self, body: dict[str, Any]) -> Reply:
        query = str(body.get("query", ""))
        match = re.search(r"offline_user_data_job\.id\s*=\s*(\d+)", query)
        if "FROM offline_user_data_job" not in query or not match:
            return _error(400, "INVALID_ARGUMENT", "unsupported query",
                          {"queryError": "UNEXPECTED_END_OF_QUERY"})  # fmt: skip
        name = f"customers/{self.customer_id}/offlineUserDataJobs/{match[1]}"
        with self.lock:
            job = self.jobs.get(name)
            if job is None:
                return Reply(200, {"results": []})
            if job.status == "RUNNING":
                # a job is seen RUNNING once, then SUCCESS (the platform processes it later)
                job.polls_running += 1
                if job.polls_running > 1:
                    job.status = "SUCCESS"
            status = job.status
        row = {"resourceName": name, "id": match[1], "status": status, "type":
               "CUSTOMER_MATCH_USER_LIST"}  # fmt: skip
        return Reply(200, {"results": [{"offlineUserDataJob": row}], "fieldMask":
                           "offlineUserDataJob.resourceName,offlineUserDataJob.status"})  # fmt: skip


def _valid_consent(consent: Any) -> bool:
    return (
        isinstance(consent, dict)
        and set(consent) <= {"adUserData", "adPersonalization"}
        and (set(consent.values()) <= CONSENT_STATUSES)
    )
