"""What one sync is, once its YAML is validated (orchestration/activation/syncs.py loads it):
the segment or action it sends, the destination and its own settings, the channel and purpose
consent is checked for. Destinations (destinations/registry.py) and the runners type against it;
it imports neither."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from orchestration.activation.arms import ArmSpec, arm_sql

# push consent is recorded against the customer's email (consent_state channel push): the
# contact point a push sync checks and records
CHANNEL_CONTACT_COLUMN = {"email": "email", "sms": "phone", "push": "email"}
WEBHOOK_MAX_ROWS, WEBHOOK_MAX_BYTES = 1000, 1_000_000  # the generic webhook's ceilings

# The name of an environment variable (POSIX portable, upper case): what a sync YAML writes for
# a credential. A value that is not such a name (a token pasted in) fails validation.
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]


class DestinationConfig(BaseModel):
    """Base of a destination's `config:` schema: unknown keys refused, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SyncDefinitionError(ValueError):
    """A sync YAML is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class SyncDefinition:
    """One audience sync: who (segment), where (destination), on which channel and purpose."""

    name: str
    segment: str
    destination: str
    channel: str
    purpose: str
    fields: dict[str, str]  # destination field → customer_360 column
    mode: str
    file_format: str
    path: Path
    identifier: str = "customer_id"  # the destination's key for a person (a customer_360 column)
    batch_rows: int = WEBHOOK_MAX_ROWS
    batch_bytes: int = WEBHOOK_MAX_BYTES
    max_remove_share: float = 0.2  # mirror: refuse a plan removing more of the rows in state
    uri: str | None = None  # file_drop: s3://bucket/prefix or a local folder (None = outbox)
    table: str | None = None  # postgres_table: schema.table
    # the destination's own settings (its registry config schema): endpoint, env var names
    config: DestinationConfig | None = None
    max_in_flight: int | None = None  # None: the destination's default
    rate_per_second: float | None = None  # None: the destination's default
    # diff syncs: a row the destination rejects this many times in a row (same op and fields)
    # is parked — recorded with its reason, not sent again until its fields change
    max_attempts: int = 3
    # A/B/n: treatment arms splitting the members the segment does not hold out (arms.py)
    arms: tuple[ArmSpec, ...] = ()
    experiment: str | None = None  # the arm assignment's key; None: the sync's name

    @property
    def arm_key(self) -> str:
        """What the arm hash is keyed by: the experiment, else the sync's name."""
        return self.experiment or self.name

    def arm_sql(self, customer_expr: str, dialect: str = "duckdb") -> str:
        """SQL of a member's arm name (null in the sync's own holdout or without arms), in the
        SQL of `dialect` (engine.dialect_of the warehouse connection)."""
        return arm_sql(self.arms, self.arm_key, customer_expr, dialect)

    @property
    def contact_column(self) -> str:
        return CHANNEL_CONTACT_COLUMN[self.channel]

    @property
    def audience_table(self) -> str:
        """Where the audience rows are (customer_id, segment_name, is_holdout): the segment's
        members, or for `action:` syncs the customers whose next-best action it is."""
        if self.segment.startswith("action:"):
            return "marts.action_membership"
        return "marts.segment_membership"


@cache
def consent_purposes() -> tuple[str, ...]:
    """The purposes consent is recorded for (the consent contract's validValues of `purpose`):
    a sync for any other purpose would find no consent and send nobody."""
    from orchestration.contracts.model import source_contract

    rules = source_contract("consent__events").rules
    return next(r.valid_values for r in rules if r.column == "purpose" and r.kind == "validValues")
