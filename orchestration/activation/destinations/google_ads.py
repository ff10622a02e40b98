"""Google Ads Customer Match destination: a sync's audience as the members of one Customer Match
user list, through the Google Ads API's OfflineUserDataJobService (REST).

Per `send`: one CUSTOMER_MATCH_USER_LIST job; its operations (removes first, then creates: one
UserData per person with a hashed email, a hashed phone and an address, normalised and hashed
as Google documents, hashing.py) added with partial failure enabled, in requests of at most
`max_identifiers_per_request` identifiers (Google's ceiling: 100,000); then the job is run and
its status read until it ends. A job that is never run applies nothing, so a request whose
answer was lost (a timeout) is not resent into the same job: the job is dropped and the rows
go into a fresh one. A run whose answer was lost is read back from the job's status (run again
only if it is still PENDING). An operation Google refuses (partial failure, `operations[i]`)
rejects its row with Google's error code and message.

EEA consent (Google's `Consent`: `adUserData`, `adPersonalization`, each GRANTED or DENIED) is
sent on the job (`customerMatchUserListMetadata.consent`) and on every create's UserData (which
overrides the job's for that person). It is derived from the person's consent row: the planner
sends only people whose consent for the sync's channel and purpose is granted, so
`adUserData` is GRANTED; `adPersonalization` is GRANTED when that purpose is one of
PERSONALIZED_PURPOSES (personalised advertising is what it was given for), else DENIED.

Removals need the hashes the person was added with; the diff planner sends them without
fields, so the client keeps them in a ledger (_ledger.py), written before the job runs. The
ledger also records the job that carried each add: before a row is resent after an unknown
outcome (a lost answer, or a run killed mid-sync), that job is read until it ends (`job_end`):
SUCCESS acknowledges the row without sending it again; FAILED or PENDING (never run) resends
it; still RUNNING after `max_polls` reads leaves the row unknown, unsent, for the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import Field

from orchestration.activation.destinations import hashing
from orchestration.activation.destinations._hashed_audience import (
    HashedAudienceClient,
    HashedAudienceConfig,
)
from orchestration.activation.destinations._platform_spec import ClientRecipe, platform_spec
from orchestration.activation.destinations.http_platform import Answer, platform_errors
from orchestration.activation.destinations.registry import Limits
from orchestration.activation.destinations.rows import Outcome, Row
from orchestration.activation.sync_definition import EnvName

MAX_IDENTIFIERS_PER_REQUEST = 100_000  # Google's ceiling per AddOfflineUserDataJobOperations
# consent purposes that cover personalised advertising (ad_personalization)
PERSONALIZED_PURPOSES = frozenset({"marketing", "advertising", "personalization"})


def consent_for(purpose: str) -> dict[str, str]:
    """Google's Consent for a person whose consent row for `purpose` is granted (module
    docstring)."""
    personalized = "GRANTED" if purpose in PERSONALIZED_PURPOSES else "DENIED"
    return {"adUserData": "GRANTED", "adPersonalization": personalized}


GoogleAdsConfigError, GoogleAdsAuthError = platform_errors("Google Ads", __name__)


class GoogleAdsConfig(HashedAudienceConfig):
    """A Google Ads sync's `config:`. Credentials are env var NAMES."""

    config_error = GoogleAdsConfigError
    identifying_fields = frozenset({"email", "phone", "first_name"})
    identifying_rule = (
        "Customer Match needs email, phone, or first_name + last_name + country_code + postal_code"
    )

    customer_id: str = Field(pattern=r"^\d{10}$")
    user_list_id: str = Field(pattern=r"^\d{1,20}$")
    login_customer_id: str | None = Field(default=None, pattern=r"^\d{10}$")
    endpoint: str = "https://googleads.googleapis.com"
    api_version: str = Field(default="v21", pattern=r"^v\d{2}$")
    developer_token_env: EnvName = "C360_GOOGLE_ADS_DEVELOPER_TOKEN"
    access_token_env: EnvName = "C360_GOOGLE_ADS_ACCESS_TOKEN"
    max_identifiers_per_request: int = Field(
        default=MAX_IDENTIFIERS_PER_REQUEST, ge=1, le=MAX_IDENTIFIERS_PER_REQUEST
    )
    poll_seconds: float = Field(default=10.0, ge=0)
    max_polls: int = Field(default=60, ge=1)


class GoogleAdsClient(HashedAudienceClient):
    """Sends rows of one sync to one Customer Match user list (module docstring)."""

    platform = "Google Ads"
    auth_error = GoogleAdsAuthError
    no_identifier = "no usable identifier (email, phone or a full address)"

    def __init__(
        self, config: GoogleAdsConfig, sync: str, developer_token: str, access_token: str,
        purpose: str = "marketing", **kwargs: Any,
    ) -> None:  # fmt: skip
        headers = {"Authorization": f"Bearer {access_token}", "developer-token": developer_token}
        if config.login_customer_id:
            headers["login-customer-id"] = config.login_customer_id
        settings = config.client_settings(config.max_identifiers_per_request)
        base = f"{config.endpoint}/{config.api_version}/customers/{config.customer_id}"
        super().__init__(sync, base, headers, settings, [developer_token, access_token],
                         **kwargs)  # fmt: skip
        self.config = config
        self.auth_env = f"{config.developer_token_env} and {config.access_token_env}"
        self.user_list = f"customers/{config.customer_id}/userLists/{config.user_list_id}"
        self.consent = consent_for(purpose)

    def member(self, row: Row) -> dict[str, Any] | None:
        """The person's UserData (hashed identifiers), None without a usable one."""
        identifiers = hashing.google_user_identifiers(row.fields, self.config.default_region)
        return {"userIdentifiers": identifiers} if identifiers else None

    # --- HTTP -------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> Answer:
        return self.request("POST", f"/{path}", json=body)

    def job_status(self, job: str) -> str | None:
        """The job's status (PENDING, RUNNING, SUCCESS, FAILED), None if unreadable."""
        job_id = job.rsplit("/", 1)[-1]
        query = (
            "SELECT offline_user_data_job.resource_name, offline_user_data_job.status "
            f"FROM offline_user_data_job WHERE offline_user_data_job.id = {int(job_id)}"
        )
        answer = self._post("googleAds:search", {"query": query})
        if not answer.ok(200):
            return None
        results = answer.body().get("results") or []
        if not results:
            return None
        return (results[0].get("offlineUserDataJob") or {}).get("status")

    def job_end(self, job: str) -> str | None:
        """The status a job ends with, read until it is no longer RUNNING (at most max_polls
        reads, poll_seconds apart): SUCCESS or FAILED; PENDING (never run: it applies
        nothing); RUNNING if it has not ended by then; None if unreadable."""
        return self.poll(
            lambda: self.job_status(job),
            lambda status: status != "RUNNING",
            self.config.max_polls,
            self.config.poll_seconds,
        )

    # --- one job ----------------------------------------------------------------------------

    def _chunks(self, ops: list[tuple[str, str, dict]]) -> Iterable[tuple[int, list]]:
        """(offset, operations) within max_identifiers_per_request identifiers each."""
        start, count, current = 0, 0, []
        for i, (_, kind, user_data) in enumerate(ops):
            n = len(user_data["userIdentifiers"])
            if current and count + n > self.config.max_identifiers_per_request:
                yield start, current
                start, count, current = i, 0, []
            current.append((ops[i][0], {kind: user_data}))
            count += n
        if current:
            yield start, current

    def _job(
        self, ops: list[tuple[str, str, dict]], rejected: dict[int, str], creates: list
    ) -> tuple[str, str]:
        """Run one job with `ops` ((row key, create|remove, UserData)); refused operations go
        into `rejected` (op index → reason). Returns (status, reason): 'ok' (job SUCCESS),
        'retry' (nothing applied: start a new job), 'failed' (job FAILED), 'unknown' (ran,
        end not seen)."""
        body = {"job": {"type": "CUSTOMER_MATCH_USER_LIST",
                        "customerMatchUserListMetadata": {"userList": self.user_list,
                                                          "consent": self.consent}}}  # fmt: skip
        answer = self._post("offlineUserDataJobs:create", body)
        if not answer.ok(200):
            return "retry", self.why(answer)
        job = answer.body().get("resourceName", "")
        job_path = job.split("/", 2)[-1]  # offlineUserDataJobs/<id>
        for offset, keyed in self._chunks(ops):
            operations = [operation for _, operation in keyed]
            body = {"enablePartialFailure": True, "operations": operations}
            answer = self._post(f"{job_path}:addOperations", body)
            if answer.response is None:
                return "retry", self.why(answer)  # the job is dropped, never run
            if answer.status != 200:
                reason = self.why(answer)
                for i in range(offset, offset + len(operations)):
                    rejected[i] = reason
                continue
            failure = answer.body().get("partialFailureError") or {}
            for detail in failure.get("details") or []:
                for error in detail.get("errors") or []:
                    index = _operation_index(error)
                    if index is not None:
                        code = "/".join(str(v) for v in (error.get("errorCode") or {}).values())
                        rejected[offset + index] = f"{code}: {error.get('message', '')}".strip()
        if len(rejected) == len(ops):
            return "ok", ""  # nothing left to run
        # only the adds Google took: a refused one must not be acknowledged later by this job
        self.ledger.mark([pair for i, pair in creates if i not in rejected], job)
        for _ in range(self.config.max_attempts):
            answer = self._post(f"{job_path}:run", {})
            if answer.ok(200):
                break
            status = self.job_status(job)
            if status not in (None, "PENDING"):
                break  # the run was applied, its answer lost
            if answer.response is not None:  # refused: the job stays unrun
                return "retry", self.why(answer)
        else:
            return "retry", "the job could not be run"
        status = self.poll(
            lambda: self.job_status(job),
            lambda status: status in ("SUCCESS", "FAILED"),
            self.config.max_polls,
            self.config.poll_seconds,
        )
        if status == "SUCCESS":
            return "ok", ""
        if status == "FAILED":
            return "failed", f"job {job_path} FAILED"
        return "unknown", f"job {job_path} still running"

    # --- the public call --------------------------------------------------------------------

    def _reconciler(self) -> Callable[[Row, str, dict[str, str | None]], Outcome | None]:
        """For one send: an upsert whose member the ledger holds alone, with the job that
        carried it, is settled by how that job ended (each job read once per send)."""
        ends: dict[str, str | None] = {}

        def reconcile(row: Row, member: str, held: dict[str, str | None]) -> Outcome | None:
            job = held.get(member)
            if not job or len(held) != 1:
                return None
            ended = ends[job] if job in ends else ends.setdefault(job, self.job_end(job))
            if ended == "SUCCESS":
                # sent before, answer lost: the job that carried it has run
                self.ledger.settle(row.identifier, {member: job})
                return Outcome("ok", "reconciled: its job ran", 1)
            if ended == "RUNNING":
                # its job may still apply it: a resend now could add it twice
                return Outcome("unknown", f"job {job.split('/', 2)[-1]} still running", 1)
            return None

        return reconcile

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """Every row's outcome by idempotency key (module docstring)."""
        plan = self.plan(rows, self._reconciler())
        # consent goes with each create; the ledger keys a person by the identifiers alone
        ops = [(key, "remove", data) for key, data in plan.removes] + [
            (key, "create", {**data, "consent": self.consent}) for key, data in plan.adds
        ]
        # one job per request's worth of operations: a lost answer drops only that job
        results: dict[str, list[tuple[str, str]]] = {key: [] for key in plan.after}
        for _, chunk in self._chunks(ops):
            chunk_ops = [(key, kind, data) for (key, kind, data) in
                         ((k, next(iter(o)), next(iter(o.values()))) for k, o in chunk)]  # fmt: skip
            status, reason, rejected = self._with_attempts(chunk_ops, plan.intents)
            for index, (key, _, _) in enumerate(chunk_ops):
                if index in rejected:
                    results[key].append(("rejected", rejected[index]))
                else:
                    results[key].append((status, reason))
        return self.finish(plan, results)

    def _with_attempts(
        self, ops: list[tuple[str, str, dict]], marks: dict[str, tuple[str, str]]
    ) -> tuple[str, str, dict[int, str]]:
        """One job for ops, a new job after one that was not applied, up to max_attempts:
        (status ok | retryable | unknown, reason, refused op index → reason)."""
        reason = ""
        for attempt in range(1, self.config.max_attempts + 1):
            rejected: dict[int, str] = {}
            carried = [(i, marks[key]) for i, (key, kind, _) in enumerate(ops) if kind == "create"]
            status, reason = self._job(ops, rejected, carried)
            if status == "ok":
                return "ok", "", rejected
            if status == "unknown":
                return "unknown", reason, rejected
            if status == "failed":
                return "retryable", reason, rejected
            self.log(f"{self.sync}: job attempt {attempt} not applied ({reason}); a new job")
            self.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
        return "retryable", reason, {}


def _operation_index(error: dict[str, Any]) -> int | None:
    for element in (error.get("location") or {}).get("fieldPathElements") or []:
        if element.get("fieldName") == "operations" and "index" in element:
            return int(element["index"])
    return None


DESTINATION = platform_spec(
    "google_ads",
    "Google Ads Customer Match user list (OfflineUserDataJobService, hashed ids)",
    GoogleAdsConfig,
    Limits(batch_rows=10_000, max_batch_rows=10_000, batch_bytes=10_000_000, max_in_flight=1),
    ClientRecipe(
        GoogleAdsClient,
        "customer_id and user_list_id needed",
        {"developer_token_env": "developer token", "access_token_env": "OAuth access token"},
        lambda sync: {"purpose": sync.purpose},
    ),
)
