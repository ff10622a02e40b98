"""Nightly retry of destination deletes that were not acknowledged (grain: one acknowledgement
of one receipt: sync × identifier hash).

A receipt left `destinations_pending` keeps the person's `activation.sync_state` row at each
destination that did not answer ok (the sweep leaves sync_state alone; only an ok deletes it), so
the retry finds the identifier again by its keyed hash, never from a stored copy. Each night the
delete is sent again; an ok replaces the acknowledgement; after `max_attempts` sends in all the
acknowledgement becomes `failed` and the receipt `destinations_failed` (reported by the erasure
asset's WARN check). A receipt whose every acknowledgement is ok becomes `done`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from orchestration.engine import Connection, table_exists
from orchestration.privacy.destinations import deliver
from orchestration.privacy.keys import keyed_hash

ATTEMPTS_ENV = "C360_ERASURE_DELETE_ATTEMPTS"
DEFAULT_ATTEMPTS = 5


@dataclass(frozen=True)
class RetrySummary:
    receipts: int  # receipts that were pending before the retry
    acknowledged: int  # acknowledgements that became ok
    failed: int  # acknowledgements that ran out of attempts tonight
    still_pending: int  # receipts still destinations_pending


def max_attempts() -> int:
    """Sends per destination acknowledgement before it is reported failed (env var, ≥ 1)."""
    return max(1, int(os.environ.get(ATTEMPTS_ENV, DEFAULT_ATTEMPTS)))


def receipt_status(acks: list[dict]) -> str:
    """done (every answer ok), destinations_pending (one may still succeed) or
    destinations_failed (none pending, at least one failed for good)."""
    if all(a["status"] == "ok" for a in acks):
        return "done"
    if any(a["status"] not in ("ok", "failed") for a in acks):
        return "destinations_pending"
    return "destinations_failed"


def _held(con: Connection, sync_id: str, identifier_hash: str) -> list[tuple[str, str, int | None]]:
    rows = con.execute(
        "select sync_id, identifier, generation from activation.sync_state "
        "where sync_id = ? and status <> 'removed' order by identifier",
        [sync_id],
    ).fetchall()
    return [r for r in rows if keyed_hash("identifier", r[1]) == identifier_hash]


def retry_pending(
    con: Connection,
    attempts: int | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> RetrySummary:
    """Send again every delete of a `destinations_pending` receipt that was not answered ok."""
    from orchestration.privacy.erasure import RECEIPTS

    limit = attempts or max_attempts()
    if not table_exists(con, "audit", "erasure_receipts"):
        return RetrySummary(0, 0, 0, 0)
    pending = con.execute(
        # the JSON as text: Postgres' driver would hand it over parsed
        f"select request_id, cast(destinations as varchar) from {RECEIPTS} "
        "where status = 'destinations_pending'"
    ).fetchall()
    pending.sort(key=lambda p: str(p[0]).encode())  # byte order on any engine's collation
    acknowledged = failed = still = 0
    for request_id, destinations in pending:
        acks = json.loads(destinations)
        for ack in acks:
            if ack["status"] in ("ok", "failed"):
                continue
            held = _held(con, ack["sync"], ack["identifier_hash"])
            sent = int(ack.get("attempts", 1)) + 1
            if held:
                answers = deliver(con, request_id, held, log)
                answer = answers[0] if answers else None
                status = answer.status if answer else "error"
                reason = (answer.reason if answer else "") or ""
            else:  # the holder's row is gone: nothing is left to send the delete from
                status, reason = "failed", "holder no longer in sync_state"
            if status == "ok":
                acknowledged += 1
            elif status != "failed" and sent >= limit:
                status = "failed"
            if status == "failed":
                failed += 1
            ack.update(status=status, reason=reason, attempts=sent)
        status = receipt_status(acks)
        still += status == "destinations_pending"
        con.execute(
            f"update {RECEIPTS} set destinations = ?, status = ? where request_id = ?",
            [json.dumps(acks), status, request_id],
        )
        log(f"erasure retry: {request_id}: {status}")
    return RetrySummary(len(pending), acknowledged, failed, still)
