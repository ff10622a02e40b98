"""Meta Custom Audiences destination: a sync's audience as the people of one Customer File
Custom Audience, through the Marketing API's users edge (Graph API).

Each person is one row of a multi-key payload, schema EMAIL, PHONE, FN, LN, ZIP, COUNTRY, every
value normalised and SHA-256 hashed as Meta documents (hashing.py), "" for a missing key. Adds
are `POST /{audience_id}/users`, removals `DELETE /{audience_id}/users`, at most 10,000 rows per
request (Meta's ceiling; `batch_rows` lowers it). Each request carries a `session` whose id is
derived from the batch's content (sync, rows and op), batch_seq 1, last_batch_flag true, so a
batch resent after a lost answer (a timeout) is the same session and batch: a resend is the
same request, never a second, different upload. Meta's throttle answers (error codes 4, 17,
32, 613, 80003, HTTP 400) wait as `X-Business-Use-Case-Usage` says (or back off); transient
errors (HTTP 5xx, `is_transient`) back off. Rows Meta reports invalid
(`invalid_entry_samples`) are rejected with Meta's reason.

A person whose hashed identifiers changed is removed under the old ones and added under the
new; removals use the hashes recorded when the person was added (a ledger, _ledger.py),
since the diff planner sends removals without fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import httpx
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

MAX_ROWS = 10_000  # Meta's ceiling per users request
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80003})


# Meta's refusal of the token is error code 190 / 102 (HTTP 400/401)
MetaConfigError, MetaAuthError = platform_errors("Meta", __name__)


class MetaConfig(HashedAudienceConfig):
    """A Meta sync's `config:`. The access token is an env var NAME."""

    config_error = MetaConfigError
    identifying_fields = frozenset({"email", "phone"})

    endpoint: str = "https://graph.facebook.com"
    api_version: str = Field(default="v21.0", pattern=r"^v\d{2}\.0$")
    audience_id: str = Field(pattern=r"^\d{1,25}$")
    access_token_env: EnvName = "C360_META_ACCESS_TOKEN"


class MetaClient(HashedAudienceClient):
    """Sends rows of one sync to one Custom Audience (module docstring)."""

    platform = "Meta"
    auth_error = MetaAuthError
    no_identifier = "no usable identifier (email or phone)"

    def __init__(
        self, config: MetaConfig, sync: str, access_token: str, max_rows: int = MAX_ROWS,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        self.max_rows = max(1, min(max_rows, MAX_ROWS))
        headers = {"Authorization": f"Bearer {access_token}"}
        super().__init__(sync, config.endpoint, headers, config.client_settings(self.max_rows),
                         [access_token], **kwargs)  # fmt: skip
        self.config, self.auth_env = config, config.access_token_env
        self.path = f"/{config.api_version}/{config.audience_id}/users"

    def member(self, row: Row) -> list[str] | None:
        """The person's hashed row (META_SCHEMA order), None without an email or a phone."""
        values = hashing.meta_user_row(row.fields, self.config.default_region)
        return values if any(values) else None

    def throttled(self, response: httpx.Response) -> bool:
        """Meta's throttle answers: HTTP 400/403 with one of its rate-limit error codes."""
        if response.status_code not in (400, 403):
            return False
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            return False
        return isinstance(error, dict) and error.get("code") in THROTTLE_CODES

    def retry_after(self, response: httpx.Response, backoff: float) -> float:
        """Meta's own wait: estimated_time_to_regain_access (minutes) in the usage header."""
        try:
            usage = json.loads(response.headers.get("X-Business-Use-Case-Usage", "{}"))
            minutes = max(
                int(entry.get("estimated_time_to_regain_access") or 0)
                for entries in usage.values()
                for entry in entries
            )
        except (ValueError, TypeError, AttributeError):
            minutes = 0
        return max(minutes * 60.0, backoff)

    def _request(self, method: str, rows: list[list[str]], session_id: int) -> tuple[str, Any]:
        """('ok', answer JSON) | ('rejected', reason) | ('retryable', why) | ('unknown', why).
        A lost answer is resent as the same session and batch."""
        body = {
            "payload": {"schema": list(hashing.META_SCHEMA), "data": rows},
            "session": {
                "session_id": session_id,
                "batch_seq": 1,
                "last_batch_flag": True,
                "estimated_num_total": len(rows),
            },
        }
        answer = Answer(None, "timeout")
        for attempt in range(1, self.config.max_attempts + 1):
            answer = self.request(method, self.path, json=body)
            if not answer.timeout:
                break
            self.log(f"{self.sync}: meta answer lost (attempt {attempt}); same session again")
            self.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
        if answer.response is None:
            return ("unknown" if answer.timeout else "retryable"), answer.reason
        content = answer.body()
        if answer.status == 200:
            return "ok", content
        error = content.get("error") or {}
        if error.get("code") in (190, 102):
            raise MetaAuthError(
                f"{self.sync}: Meta refused the access token: check {self.config.access_token_env}"
            )
        reason = self.redact(f"({error.get('code')}) {error.get('message', '')}")
        if error.get("is_transient"):
            return "retryable", reason
        return "rejected", reason

    def _batch(self, method: str, batch: list[tuple[str, list[str]]]) -> dict[str, Outcome]:
        """One request for (row key, hashed row) pairs; each row key's outcome."""
        rows = [values for _, values in batch]
        digest = hashlib.sha256(
            json.dumps([self.sync, method, rows], separators=(",", ":")).encode()
        ).hexdigest()
        status, answer = self._request(method, rows, int(digest[:15], 16))
        if status != "ok":
            return {key: Outcome(status, answer, 1) for key, _ in batch}
        samples = answer.get("invalid_entry_samples") or {}
        out: dict[str, Outcome] = {}
        for key, values in batch:
            bad = next((samples[v] for v in values if v and v in samples), None)
            out[key] = Outcome("rejected", f"invalid entry: {bad}", 1) if bad else Outcome("ok")
        return out

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        """Every row's outcome by idempotency key (module docstring)."""
        plan = self.plan(rows)
        results: dict[str, list[tuple[str, str]]] = {key: [] for key in plan.after}
        for method, pairs in (("DELETE", plan.removes), ("POST", plan.adds)):
            for start in range(0, len(pairs), self.max_rows):
                batch = pairs[start : start + self.max_rows]
                for key, outcome in self._batch(method, batch).items():
                    results[key].append((outcome.status, outcome.reason))
        return self.finish(plan, results)


# the access token from the env var the sync's config names
_CLIENT = ClientRecipe(
    MetaClient,
    "audience_id needed",
    {"access_token_env": "Marketing API access token"},
    lambda sync: {"max_rows": sync.batch_rows},
)

DESTINATION = platform_spec(
    "meta",
    "Meta Custom Audience (users edge, hashed multi-key rows, ≤ 10,000 per request)",
    MetaConfig,
    Limits(batch_rows=MAX_ROWS, batch_bytes=10_000_000, max_in_flight=1),
    _CLIENT,
)
