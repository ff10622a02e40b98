"""A local Meta Marketing API (Graph API v21.0) for Customer File Custom Audiences, written from
the documented users edge: POST /{audience_id}/users adds and DELETE /{audience_id}/users
removes the people of a `payload` ({"schema": [...], "data": [[...], ...]}, at most 10,000
rows, every value SHA-256 hex or "" for a missing key) sent with a `session`
({"session_id", "batch_seq", "last_batch_flag"}). The answer is Meta's: audience_id,
session_id, num_received, num_invalid_entries, invalid_entry_samples (partial success: the
invalid rows are skipped, the others applied). Errors in Graph's shape ({"error": {"message",
"type", "code", "fbtrace_id"}}): a throttled ad account is HTTP 400 with code 80003 and an
X-Business-Use-Case-Usage header; a transient failure is HTTP 500 with code 2.

Sessions: this server applies a batch of a session once — a request repeating a (session_id,
batch_seq) it has applied gets the first answer again and changes nothing (how c360 makes a
resend after a lost answer safe; see docs/activation-destinations.md).

State the tests assert on: `members` (rows held, by their hashes in schema order) and `applied`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.servers.common import Faults, PlatformServer, Reply, Request, guarded

VERSION = "v21.0"
MAX_ROWS = 10_000
SCHEMA_KEYS = {"EMAIL", "PHONE", "FN", "LN", "ZIP", "CT", "ST", "COUNTRY", "DOBY", "GEN",
               "MADID", "EXTERN_ID", "FI", "DOBM", "DOBD"}  # fmt: skip
IDENTIFYING = {"EMAIL", "PHONE", "MADID", "EXTERN_ID"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _error(status: int, code: int, message: str, **extra: Any) -> Reply:
    body = {"error": {"message": message, "type": "OAuthException", "code": code,
                      "fbtrace_id": "AbCdEf123", **extra}}  # fmt: skip
    return Reply(status, body)


class MetaServer(PlatformServer):
    """See the module docstring."""

    def __init__(
        self,
        audience_id: str = "23850000000000001",
        access_token: str = "meta-token",
        ad_account: str = "act_1001",
        faults: Faults | None = None,
        max_rows: int = MAX_ROWS,
    ) -> None:
        super().__init__(faults)
        self.audience_id, self.access_token, self.ad_account = audience_id, access_token, ad_account
        self.max_rows = max_rows
        self.members: dict[tuple[str, ...], dict[str, str]] = {}
        self.schema: tuple[str, ...] | None = None
        self.applied: list[tuple[str, tuple[str, ...]]] = []  # (add|remove, row)
        self.duplicate_adds = 0
        self.sessions: dict[tuple[str, int, str], dict[str, Any]] = {}
        self.requests_over_limit = 0
        self.handle = guarded(self._handle)  # type: ignore[method-assign]

    def held(self, key: str) -> set[str]:
        """Every hash held under one schema key (EMAIL, PHONE, ...)."""
        return {m[key] for m in self.members.values() if m.get(key)}

    def _handle(self, request: Request) -> Reply:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return _error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if request.path != f"/{VERSION}/{self.audience_id}/users":
            return _error(400, 100, "Unsupported request - method type or path not supported",
                          error_subcode=33)  # fmt: skip
        if request.method not in ("POST", "DELETE"):
            return _error(400, 100, "Unsupported request - method type not supported")
        body = request.json if isinstance(request.json, dict) else {}
        fault = self.draw()
        if fault == "rate_limit":
            reply = _error(400, 80003, "(#80003) There have been too many calls to this "
                           "ad-account. Wait a bit and try again.", error_subcode=2446079,
                           is_transient=True)  # fmt: skip
            usage = {self.ad_account.removeprefix("act_"): [{"type": "custom_audience",
                     "call_count": 100, "total_cputime": 20, "total_time": 20,
                     "estimated_time_to_regain_access": 0}]}  # fmt: skip
            reply.headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
            return reply
        if fault == "server_error":
            return _error(500, 2, "An unexpected error has occurred. Please retry your request "
                          "later.", is_transient=True)  # fmt: skip
        with self.lock:
            reply = self._apply("add" if request.method == "POST" else "remove", body)
        return self.applied_then_late(reply, fault)

    def _apply(self, kind: str, body: dict[str, Any]) -> Reply:
        payload, session = body.get("payload"), body.get("session") or {}
        if isinstance(payload, str):
            payload = json.loads(payload)
        if not isinstance(payload, dict):
            return _error(400, 100, "(#100) The parameter payload is required")
        schema, data = payload.get("schema"), payload.get("data")
        if isinstance(schema, str):
            schema = [schema]
        if not isinstance(schema, list) or not schema or set(schema) - SCHEMA_KEYS:
            return _error(400, 100, "(#100) Invalid schema")
        if not isinstance(data, list) or not data:
            return _error(400, 100, "(#100) The parameter data is required")
        if len(data) > self.max_rows:
            self.requests_over_limit += 1
            return _error(400, 100, f"(#100) The number of users in the payload exceeds the "
                          f"limit of {self.max_rows}")  # fmt: skip
        session_key = (str(session.get("session_id", "")), int(session.get("batch_seq", 0)), kind)
        if session.get("session_id") and session_key in self.sessions:
            return Reply(200, self.sessions[session_key])  # this batch is applied already
        invalid: dict[str, str] = {}
        for row in data:
            values = row if isinstance(row, list) else [row]
            problem = None
            if len(values) != len(schema):
                problem = "Row length does not match the schema"
            elif not any(values):
                problem = "Row has no value"
            elif any(v and not SHA256.match(str(v)) for v, k in zip(values, schema, strict=True)
                     if k not in ("MADID", "EXTERN_ID")):  # fmt: skip
                problem = "Value is not a SHA-256 hash"
            if problem:
                invalid[next((str(v) for v in values if v), "")] = problem
                continue
            member = dict(zip(schema, (str(v) for v in values), strict=True))
            key = tuple(member.get(k, "") for k in schema)
            if kind == "add":
                if key in self.members:
                    self.duplicate_adds += 1
                self.members[key] = member
            else:
                # a row is matched to the people it identifies: by an identifying key (COUNTRY,
                # ZIP or a name alone identify nobody)
                gone = [k for k, m in self.members.items()
                        if any(v and m.get(s) == v for s, v in member.items()
                               if s in IDENTIFYING)]  # fmt: skip
                for k in gone:
                    del self.members[k]
            self.applied.append((kind, key))
        answer = {
            "audience_id": self.audience_id,
            "session_id": str(session.get("session_id", "")),
            "num_received": len(data),
            "num_invalid_entries": len(invalid),
            "invalid_entry_samples": invalid,
        }
        if session.get("session_id"):
            self.sessions[session_key] = answer
        return Reply(200, answer)
