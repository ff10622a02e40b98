"""Klaviyo destination: a sync's audience as the members of one Klaviyo list, through the
Klaviyo API (JSON:API; `revision` header on every request).

Adds and updates go in profile bulk import jobs (`POST /api/profile-bulk-import-jobs`, at most
10,000 profiles per job): each person is a profile keyed by `external_id` (the sync's
identifier) with the sync's fields (email, phone_number, first_name, last_name, location zip
and country), and the job adds them to the list. The job is polled until it is complete;
its import errors (a JSON pointer to each refused profile) reject those rows with Klaviyo's
detail. A job whose answer was lost (a timeout) is read back before anything is resent: the
list's profiles with those external ids (`GET /api/lists/{id}/profiles?filter=any(...)`, 100
per request) holding the attributes sent are acknowledged, only the others go into a new job.
The rows of a resumed plan (a killed run may have had their job applied) are read back the
same way before anything is sent (`send_resumed`): a killed run's job ids die with it, the
list's profiles do not.

Removals: the profiles with those external ids are looked up (`GET /api/profiles`) and taken
out of the list (`DELETE /api/lists/{id}/relationships/profiles`, at most 1,000 per request;
removing a profile not in the list changes nothing, so a resend is safe). With
`unsubscribe_on_remove: true` a removed person's email is also unsubscribed from email
marketing (`POST /api/profile-subscription-bulk-delete-jobs`, at most 100 per job) — for a
sync whose removals mean consent withdrawn rather than a segment left.
Erasure (`delete`): each person's profile through the Data Privacy API
(`POST /api/data-privacy-deletion-jobs`). Platform-side opt-outs (`unsubscribes`): the profiles
whose email marketing suppression is newer than the cursor (Get Profiles with subscriptions).
429 waits Retry-After; 5xx and dropped connections back off.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import Field

from orchestration.activation.destinations._platform_spec import ClientRecipe, platform_spec
from orchestration.activation.destinations.http_platform import (
    Answer,
    BulkPlatformConfig,
    PlatformClient,
    platform_errors,
)
from orchestration.activation.destinations.registry import Limits, PlatformUnsubscribe
from orchestration.activation.destinations.rows import Outcome, Row
from orchestration.activation.sync_definition import EnvName
from orchestration.redaction import redact

MAX_PROFILES_PER_JOB = 10_000
MAX_LIST_RELATIONSHIPS = 1000
MAX_FILTER_VALUES = 100
MAX_UNSUBSCRIBE = 100
# sync field → Klaviyo profile attribute (location's keys nested under "location")
ATTRIBUTES = {
    "email": "email",
    "phone": "phone_number",
    "first_name": "first_name",
    "last_name": "last_name",
}
LOCATION = {"postal_code": "zip", "country_code": "country"}
# Klaviyo's email marketing suppression reasons → PlatformUnsubscribe.reason
SUPPRESSION_REASONS = {
    "UNSUBSCRIBE": "unsubscribed",
    "USER_SUPPRESSED": "unsubscribed",
    "SPAM_COMPLAINT": "complaint",
    "HARD_BOUNCE": "bounce",
    "INVALID_EMAIL": "bounce",
}


KlaviyoConfigError, KlaviyoAuthError = platform_errors("Klaviyo", __name__)


class KlaviyoConfig(BulkPlatformConfig):
    """A Klaviyo sync's `config:`. The private API key is an env var NAME."""

    config_error = KlaviyoConfigError
    identifying_fields = frozenset({"email", "phone"})

    list_id: str = Field(pattern=r"^[A-Za-z0-9]{1,32}$")
    endpoint: str = "https://a.klaviyo.com"
    revision: str = Field(default="2025-01-15", pattern=r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
    api_key_env: EnvName = "C360_KLAVIYO_API_KEY"
    unsubscribe_on_remove: bool = False
    poll_seconds: float = Field(default=5.0, ge=0)
    max_polls: int = Field(default=120, ge=1)

    def check_fields(self, fields: set[str]) -> None:
        """Every field must be a Klaviyo profile attribute (ATTRIBUTES, LOCATION)."""
        unknown = fields - set(ATTRIBUTES) - set(LOCATION)
        if unknown:
            raise ValueError(
                f"fields: {', '.join(sorted(unknown))} not a Klaviyo profile field "
                f"(known: {', '.join([*ATTRIBUTES, *LOCATION])})"
            )


def profile_attributes(identifier: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The Klaviyo profile attributes of one row: external_id and the mapped fields."""
    attributes: dict[str, Any] = {"external_id": identifier}
    for field, name in ATTRIBUTES.items():
        if fields.get(field) is not None:
            attributes[name] = str(fields[field])
    location = {n: str(fields[f]) for f, n in LOCATION.items() if fields.get(f) is not None}
    if location:
        attributes["location"] = location
    return attributes


class KlaviyoClient(PlatformClient):
    """Sends rows of one sync to one Klaviyo list (module docstring). `kwargs`: the
    PlatformClient's (http, sleep, log, rate)."""

    platform = "Klaviyo"
    auth_error = KlaviyoAuthError

    def __init__(
        self, config: KlaviyoConfig, sync: str, api_key: str,
        max_rows: int = MAX_PROFILES_PER_JOB, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.max_rows = max(1, min(max_rows, MAX_PROFILES_PER_JOB))
        headers = {
            "Authorization": f"Klaviyo-API-Key {api_key}",
            "revision": config.revision,
            "Accept": "application/vnd.api+json",
            "Content-Type": "application/vnd.api+json",
        }
        super().__init__(sync, config.endpoint + "/api", headers,
                         config.client_settings(self.max_rows), [api_key], **kwargs)  # fmt: skip
        self.config, self.auth_env = config, config.api_key_env

    def _call(self, method: str, path: str, **kwargs: Any) -> Answer:
        return self.request(method, path, **kwargs)

    def _job_state(self, job: str) -> str:
        """A bulk import job's status (`queued`, `processing`, `complete`, `cancelled`), "" when
        the read got no answer."""
        read = self._call("GET", f"/profile-bulk-import-jobs/{job}")
        if not read.ok(200):
            return ""
        return ((read.body().get("data") or {}).get("attributes") or {}).get("status", "")

    def _profiles(self, external_ids: list[str], in_list: bool) -> dict[str, dict] | None:
        """external_id → {id, attributes} of the profiles found (in the list only if
        `in_list`), None if unreadable."""
        path = f"/lists/{self.config.list_id}/profiles" if in_list else "/profiles"
        found: dict[str, dict] = {}
        for start in range(0, len(external_ids), MAX_FILTER_VALUES):
            chunk = external_ids[start : start + MAX_FILTER_VALUES]
            values = ",".join(json.dumps(v) for v in chunk)
            answer = self._call(
                "GET",
                path,
                params={
                    "filter": f"any(external_id,[{values}])",
                    "page[size]": str(MAX_FILTER_VALUES),
                },
            )
            if not answer.ok(200):
                return None
            for item in answer.body().get("data") or []:
                attributes = item.get("attributes") or {}
                found[str(attributes.get("external_id"))] = {"id": item.get("id"), **attributes}
        return found

    # --- adds ---------------------------------------------------------------------------------

    def _import(self, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        """One bulk import job for rows (≤ max_rows): outcomes per row."""
        profiles = [profile_attributes(r.identifier, r.fields) for r in rows]
        body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
            {"type": "profile", "attributes": p} for p in profiles]}}, "relationships": {
            "lists": {"data": [{"type": "list", "id": self.config.list_id}]}}}}  # fmt: skip
        answer = self._call("POST", "/profile-bulk-import-jobs", json=body)
        if not answer.ok(200, 202):
            for row in rows:
                outcomes[row.idempotency_key] = self.outcome(answer, 200, 202)
            return
        job = (answer.body().get("data") or {}).get("id", "")
        state = self.poll(
            lambda: self._job_state(job),
            lambda state: state in ("complete", "cancelled"),
            self.config.max_polls,
            self.config.poll_seconds,
        )
        if state != "complete":
            for row in rows:
                outcomes[row.idempotency_key] = Outcome("unknown", f"job {job}: {state}", 1)
            return
        refused: dict[int, str] = {}
        errors = self._call("GET", f"/profile-bulk-import-jobs/{job}/import-errors")
        if errors.ok(200):
            for item in errors.body().get("data") or []:
                attributes = item.get("attributes") or {}
                pointer = str((attributes.get("source") or {}).get("pointer", ""))
                index = pointer.rsplit("/", 1)[-1]
                if index.isdigit() and int(index) < len(rows):
                    # Klaviyo's detail may quote the value: the row's own values are cut
                    values = [str(v) for v in _values(profiles[int(index)])]
                    refused[int(index)] = redact(str(attributes.get("detail", "")), values)
        for index, row in enumerate(rows):
            if index in refused:
                outcomes[row.idempotency_key] = Outcome("rejected", refused[index], 1)
            else:
                outcomes[row.idempotency_key] = Outcome("ok", "", 1)

    def read_back(self, rows: list[Row]) -> dict[str, bool | None]:
        """By idempotency key, for upserts: True if the list holds the profile with every
        attribute sent, False if not; {} if the list could not be read. Removals are not read
        back (removing a profile not in the list changes nothing, a resend is safe)."""
        upserts = [r for r in rows if r.op == "upsert"]
        held = self._profiles([r.identifier for r in upserts], in_list=True) if upserts else {}
        if held is None:
            return {}
        out: dict[str, bool | None] = {}
        for row in upserts:
            found = held.get(row.identifier)
            sent = profile_attributes(row.identifier, row.fields)
            out[row.idempotency_key] = bool(found) and all(
                found.get(k) == v for k, v in sent.items()
            )
        return out

    def _read_back(self, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        """Unknown rows found in the list with the attributes sent become ok."""
        for key, held in self.read_back(rows).items():
            if held:
                outcomes[key] = Outcome("ok", "reconciled by read-back", 1)

    # --- removals ---------------------------------------------------------------------------

    def _remove(self, rows: list[Row], outcomes: dict[str, Outcome]) -> None:
        found = self._profiles([r.identifier for r in rows], in_list=False)
        if found is None:
            for row in rows:
                outcomes[row.idempotency_key] = Outcome("retryable", "profiles unreadable", 1)
            return
        present = [r for r in rows if r.identifier in found]
        for row in rows:
            if row.identifier not in found:  # never imported: nothing to remove
                outcomes[row.idempotency_key] = Outcome("ok", "not at the platform", 1)
        for start in range(0, len(present), MAX_LIST_RELATIONSHIPS):
            chunk = present[start : start + MAX_LIST_RELATIONSHIPS]
            body = {"data": [{"type": "profile", "id": found[r.identifier]["id"]} for r in chunk]}
            for _ in range(self.config.max_attempts):  # idempotent: a lost answer is resent
                answer = self._call(
                    "DELETE", f"/lists/{self.config.list_id}/relationships/profiles", json=body
                )
                if not answer.timeout:
                    break
            outcome = self.outcome(answer, 200, 202, 204)
            status, reason = outcome.status, outcome.reason
            if status == "ok" and self.config.unsubscribe_on_remove:
                status, reason = self._unsubscribe([found[r.identifier] for r in chunk])
            for row in chunk:
                outcomes[row.idempotency_key] = Outcome(status, reason, 1)

    def _unsubscribe(self, profiles: list[dict]) -> tuple[str, str]:
        emails = [p["email"] for p in profiles if p.get("email")]
        for start in range(0, len(emails), MAX_UNSUBSCRIBE):
            body = {"data": {"type": "profile-subscription-bulk-delete-job", "attributes": {
                "profiles": {"data": [{"type": "profile", "attributes": {"email": e}}
                                      for e in emails[start : start + MAX_UNSUBSCRIBE]]}},
                "relationships": {"list": {"data": {"type": "list",
                                                    "id": self.config.list_id}}}}}  # fmt: skip
            answer = self._call("POST", "/profile-subscription-bulk-delete-jobs", json=body)
            # a lost answer: unsubscribing twice is harmless, the next removal resends it
            outcome = self.outcome(answer, 200, 202, 204)
            if outcome.status != "ok":
                return outcome.status, outcome.reason
        return "ok", ""

    # --- the public call --------------------------------------------------------------------

    def delete(self, identifiers: Iterable[str]) -> dict[str, Outcome]:
        """Erase each identifier's profile (erasure): the profiles with those external ids are
        looked up, and each found one is deleted through the Data Privacy API
        (`POST /api/data-privacy-deletion-jobs`, one profile id per request, 202; Klaviyo erases
        it asynchronously and keeps its contact information on its deletion record, as GDPR
        asks). An external id Klaviyo does not hold is `ok`: nothing to erase. A resend of a
        lost answer is safe (deleting a deleted profile changes nothing)."""
        wanted = list(dict.fromkeys(identifiers))
        found = self._profiles(wanted, in_list=False)
        if found is None:
            return {i: Outcome("retryable", "profiles could not be read", 1) for i in wanted}
        outcomes: dict[str, Outcome] = {}
        for identifier in wanted:
            profile = found.get(identifier)
            if profile is None:
                outcomes[identifier] = Outcome("ok", "", 1)
                continue
            body = {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": {
                "data": {"type": "profile", "id": profile["id"]}}}}}  # fmt: skip
            answer = self._call("POST", "/data-privacy-deletion-jobs", json=body)
            outcomes[identifier] = self.outcome(answer, 202)
        return outcomes

    def unsubscribes(self, since: dt.datetime | None = None) -> Iterator[PlatformUnsubscribe]:
        """Profiles suppressed from email marketing at Klaviyo (unsubscribe link, spam
        complaint, hard bounce, manual suppression) since `since`: Get Profiles filtered by
        `greater-than(subscriptions.email.marketing.suppression.timestamp, …)` with
        `additional-fields[profile]=subscriptions`, sorted by that timestamp, followed through
        `links.next`. The identifier is the profile's external_id (the sync's key)."""
        start = since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        stamp = start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        url: str | None = "/profiles"
        params: dict[str, str] | None = {
            "filter": f"greater-than(subscriptions.email.marketing.suppression.timestamp,{stamp})",
            "additional-fields[profile]": "subscriptions",
            "sort": "subscriptions.email.marketing.suppression.timestamp",
            "page[size]": str(MAX_FILTER_VALUES),
        }
        while url:
            answer = self.request("GET", url, params=params)
            if not answer.ok(200):
                # the cursor stays where it is: the next night asks again
                raise KlaviyoConfigError(
                    f"{self.sync}: listing suppressed profiles failed ({self.why(answer)})"
                )
            page = answer.body()
            for item in page.get("data") or []:
                attributes = item.get("attributes") or {}
                marketing = ((attributes.get("subscriptions") or {}).get("email") or {}).get(
                    "marketing"
                ) or {}
                for suppression in marketing.get("suppression") or []:
                    try:
                        at = dt.datetime.fromisoformat(
                            str(suppression.get("timestamp")).replace("Z", "+00:00")
                        )
                    except ValueError:
                        continue
                    identifier = attributes.get("external_id") or attributes.get("email")
                    if identifier and (since is None or at > since):
                        yield PlatformUnsubscribe(
                            identifier=str(identifier),
                            channel="email",
                            occurred_at=at if at.tzinfo else at.replace(tzinfo=dt.UTC),
                            reason=SUPPRESSION_REASONS.get(
                                str(suppression.get("reason")), "unsubscribed"
                            ),
                        )
            url, params = (page.get("links") or {}).get("next"), None

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """Every row's outcome by idempotency key (module docstring)."""
        rows = list(rows)
        outcomes: dict[str, Outcome] = {}
        upserts = [r for r in rows if r.op == "upsert"]
        removals = [r for r in rows if r.op == "delete"]
        for start in range(0, len(removals), MAX_LIST_RELATIONSHIPS):
            self._remove(removals[start : start + MAX_LIST_RELATIONSHIPS], outcomes)
        pending = upserts
        for attempt in range(1, self.config.max_attempts + 1):
            for start in range(0, len(pending), self.max_rows):
                self._import(pending[start : start + self.max_rows], outcomes)
            unknown = [r for r in pending if outcomes[r.idempotency_key].status == "unknown"]
            if unknown:
                self._read_back(unknown, outcomes)
            pending = [
                r for r in pending
                if outcomes[r.idempotency_key].status in ("unknown", "retryable")
            ]  # fmt: skip
            if not pending:
                break
            self.log(f"{self.sync}: round {attempt}: {len(pending)} profiles to resend")
            self.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
        return outcomes


def _values(attributes: dict[str, Any]) -> list[Any]:
    """Every value of a profile's attributes, nested ones included."""
    out: list[Any] = []
    for value in attributes.values():
        out.extend(_values(value) if isinstance(value, dict) else [value])
    return out


DESTINATION = platform_spec(
    "klaviyo",
    "Klaviyo list (profile bulk import jobs, list membership, unsubscribe)",
    KlaviyoConfig,
    Limits(batch_rows=MAX_PROFILES_PER_JOB, batch_bytes=5_000_000, max_in_flight=1),
    ClientRecipe(
        KlaviyoClient,
        "list_id needed",
        {"api_key_env": "Klaviyo private API key"},
        lambda sync: {"max_rows": sync.batch_rows},
    ),
    reports_unsubscribes=True,
)
