"""The base of the platforms whose audience is a set of hashed identifiers kept in a ledger
(Google Ads Customer Match, Meta Custom Audiences): how a send is planned from the rows and the
ledger, and how each row's outcome is settled back into it. Grain: one row = one person of one
sync; a member = the hashed identifiers sent for that person (_ledger.py).

A removal sends every member the ledger holds for the person (the diff planner sends removals
without fields). An add of a person whose member changed also removes the old ones. Adds are
written to the ledger (`intend`) before anything is sent; a row whose requests all ended ok
leaves the ledger holding exactly what the platform now holds for that person (`settle`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from orchestration.activation.destinations._ledger import Ledger, member_key
from orchestration.activation.destinations.http_platform import BulkPlatformConfig, PlatformClient
from orchestration.activation.destinations.rows import Outcome, Row

# worst first: a row sent in several requests ends with its worst outcome
SEVERITY = {"rejected": 0, "unknown": 1, "retryable": 2, "ok": 3}
# (row, its member key, what the ledger holds for the person) → an outcome without sending, or None
Reconcile = Callable[[Row, str, dict[str, str | None]], Outcome | None]


class HashedAudienceConfig(BulkPlatformConfig):
    """The config of a hashed-identifier audience: the region a phone number without a country
    code is read in before it is normalised to E.164 and hashed (hashing.py)."""

    default_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")


@dataclass
class AudiencePlan:
    """What one send does, by row idempotency key."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)  # settled without a request
    removes: list[tuple[str, Any]] = field(default_factory=list)  # (row key, member held)
    adds: list[tuple[str, Any]] = field(default_factory=list)  # (row key, member to add)
    # row key of an add → (identifier, member key): what the ledger was told to expect
    intents: dict[str, tuple[str, str]] = field(default_factory=dict)
    # row key → (identifier, the members the ledger keeps once the row ended ok)
    after: dict[str, tuple[str, dict[str, str | None]]] = field(default_factory=dict)


class HashedAudienceClient(PlatformClient):
    """A PlatformClient with a ledger of the members it sent (module docstring). A platform
    writes `member(row)` and its own `send`, built on `plan` and `finish`. Its constructor's
    `kwargs` are this class's (ledger) and PlatformClient's (http, sleep, log, rate)."""

    no_identifier = "no usable identifier"  # why an upsert with no member is rejected

    def __init__(self, *args: Any, ledger: Ledger | None = None, **kwargs: Any) -> None:
        """PlatformClient's arguments, and the sync's ledger (default: its file in
        ledger_dir())."""
        super().__init__(*args, **kwargs)
        self.ledger = ledger or Ledger(self.sync)

    def member(self, row: Row) -> Any | None:
        """The hashed identifiers of an upsert's person, as the ledger records them (None or
        empty: nothing usable to match on)."""
        raise NotImplementedError

    def plan(self, rows: Iterable[Row], reconcile: Reconcile | None = None) -> AudiencePlan:
        """The removes and adds of `rows`, the adds intended in the ledger. `reconcile` may
        settle an upsert without sending it (e.g. its earlier request is known to have run)."""
        plan = AudiencePlan()
        for row in rows:
            key, held = row.idempotency_key, self.ledger.members(row.identifier)
            if row.op == "delete":
                plan.removes.extend((key, json.loads(member)) for member in held)
                plan.after[key] = (row.identifier, {})
                continue
            member = self.member(row)
            if not member:
                plan.outcomes[key] = Outcome("rejected", self.no_identifier, 1)
                continue
            member_id = member_key(member)
            plan.removes.extend((key, json.loads(other)) for other in held if other != member_id)
            settled = reconcile(row, member_id, held) if reconcile else None
            if settled is not None:
                plan.outcomes[key] = settled
                continue
            plan.adds.append((key, member))
            plan.intents[key] = (row.identifier, member_id)
            plan.after[key] = (row.identifier, {member_id: None})
        self.ledger.intend(plan.intents.values())
        return plan

    def finish(
        self, plan: AudiencePlan, results: dict[str, list[tuple[str, str]]]
    ) -> dict[str, Outcome]:
        """Every row's outcome: its worst request's (status, reason) in `results` (ok when it
        needed none); a row that ended ok is settled in the ledger."""
        outcomes = dict(plan.outcomes)
        for key in plan.after:
            status, reason = min(
                results.get(key, ()), key=lambda r: SEVERITY[r[0]], default=("ok", "")
            )
            if status == "ok":
                identifier, keep = plan.after[key]
                self.ledger.settle(identifier, keep)
            outcomes[key] = Outcome(status, reason, 1)
        return outcomes

    def delete(self, identifiers: Iterable[str]) -> dict[str, Outcome]:
        """Erasure: remove each person from the audience (the hashes the ledger holds) and
        forget them; an identifier the ledger does not hold was never sent (ok)."""
        rows = [Row(i, "delete", {}, f"erase:{i}") for i in identifiers]
        by_key = self.send(rows)
        return {row.identifier: by_key[row.idempotency_key] for row in rows}

    def close(self) -> None:
        self.ledger.close()
        super().close()
