"""A/B/n treatment arms of a sync: the `arms:` of its YAML, validated, and their stable assignment.

A sync may split the members its segment does not hold out into named arms (e.g. two email
subjects), each taking a share of them:

    arms:
      - {name: subject_a, share: 0.45}
      - {name: subject_b, share: 0.45}
    experiment: spring_subjects      # optional: the assignment key (default: the sync's name)

Assignment is a keyed hash, as the segment holdout is: bucket = md5(customer_id || ':arm:' ||
experiment) → 0 … 9999 (the `hash_bucket` macro). The arms take consecutive bucket ranges in the
order they are declared (arm i: cumulative share before it ≤ bucket / 10000 < cumulative share
through it); the buckets past the last arm (1 − the sum of the shares) are held out by the sync
as well — recorded `held_out`, never sent, the control together with the segment's holdout.
The hash is independent of the segment's holdout hash (another key), so the arm split is the
same whatever the segment's holdout share, and a member keeps their arm from night to night.

Expected shares of the sync's audience, with h the segment's holdout share and S the sum of the
arm shares: arm i (1 − h) · share_i, held out h + (1 − h)(1 − S) (what the SRM check uses).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKETS = 10_000  # the hash_bucket macro's range
ARM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RESERVED = frozenset({"holdout", "held_out", "treated", "control"})  # names the reports use
ARM_FIELD = "arm"  # a sync's `fields` may map a destination field to it (the member's arm name)


class ArmsError(ValueError):
    """The `arms:` of a sync YAML are invalid; the message names the file and the field."""


@dataclass(frozen=True)
class ArmSpec:
    """One treatment arm: its name and its share of the members the segment does not hold out."""

    name: str
    share: float


def parse_arms(doc: dict[str, Any], path: Path) -> tuple[tuple[ArmSpec, ...], str | None]:
    """The arms and the experiment key of a sync document (`((), None)` without `arms:`).

    Rules: a non-empty list of mappings with exactly `name` and `share`; names lower-case
    identifiers (≤ 40 characters), unique, not a reserved word; shares numbers in (0, 1] that sum
    to at most 1; `experiment` (only with arms) a name of the same form."""
    experiment = doc.get("experiment")
    if "arms" not in doc:
        if experiment is not None:
            raise ArmsError(f"{path}: experiment: only a sync with arms has an experiment")
        return (), None
    raw = doc["arms"]
    if not isinstance(raw, list) or not raw:
        raise ArmsError(f"{path}: arms: a non-empty list of {{name, share}}")
    arms: list[ArmSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"{path}: arms[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "share"}:
            raise ArmsError(f"{where}: a mapping with exactly name and share")
        name, share = item["name"], item["share"]
        if not isinstance(name, str) or not ARM_NAME.match(name):
            raise ArmsError(
                f"{where}.name: {name!r} is not a name (lower-case letters, digits, _; "
                "starting with a letter; at most 40 characters)"
            )
        if name in RESERVED:
            raise ArmsError(f"{where}.name: {name!r} is reserved ({', '.join(sorted(RESERVED))})")
        if name in seen:
            raise ArmsError(f"{where}.name: {name!r} is used by another arm (names are unique)")
        seen.add(name)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise ArmsError(f"{where}.share: a number above 0 and at most 1 (got {share!r})")
        arms.append(ArmSpec(name, float(share)))
    total = sum(a.share for a in arms)
    if round(total * BUCKETS) > BUCKETS:
        raise ArmsError(
            f"{path}: arms: the shares sum to {total:g}, more than 1 (the rest, 1 − the sum, is "
            "held out)"
        )
    if experiment is not None and (
        not isinstance(experiment, str) or not ARM_NAME.match(experiment)
    ):
        raise ArmsError(
            f"{path}: experiment: {experiment!r} is not a name (lower-case letters, digits, _)"
        )
    return tuple(arms), experiment


def thresholds(arms: Sequence[ArmSpec]) -> list[tuple[str, int]]:
    """Each arm's exclusive upper bucket (cumulative share × 10,000), in declaration order."""
    out, cumulative = [], 0.0
    for arm in arms:
        cumulative += arm.share
        out.append((arm.name, min(BUCKETS, round(cumulative * BUCKETS))))
    return out


def bucket_sql(customer_expr: str, experiment: str, dialect: str = "duckdb") -> str:
    """The hash_bucket of customer id and experiment, in the macro's form for `dialect` (DuckDB:
    its duckdb form; another engine: its default form, a 32-bit string of the md5's first hex
    digits; the same bucket on every engine)."""
    key = experiment.replace("'", "''")
    text = f"md5({customer_expr} || ':arm:{key}')"
    if dialect == "duckdb":
        return f"(cast(('0x' || substr({text}, 1, 8)) as ubigint) % {BUCKETS})"
    return f"((cast(('x' || substr({text}, 1, 8)) as bit(32))::bigint & 4294967295) % {BUCKETS})"


def arm_sql(
    arms: Sequence[ArmSpec], experiment: str, customer_expr: str, dialect: str = "duckdb"
) -> str:
    """The member's arm name, null in the sync's own holdout (past the last arm) or without
    arms. Callers null it for members the segment holds out. `dialect`: the engine's (its
    bucket_sql form)."""
    if not arms:
        return "cast(null as varchar)"
    bucket = bucket_sql(customer_expr, experiment, dialect)
    cases = " ".join(f"when {bucket} < {upper} then '{name}'" for name, upper in thresholds(arms))
    return f"(case {cases} end)"


def expected_shares(arms: Sequence[ArmSpec], segment_holdout: float) -> dict[str | None, float]:
    """Expected share of the sync's audience per arm name and for the holdout (key None)."""
    h = min(max(segment_holdout, 0.0), 1.0)
    total = sum(a.share for a in arms)
    shares: dict[str | None, float] = {a.name: (1 - h) * a.share for a in arms}
    shares[None] = h + (1 - h) * (1 - total)
    return shares


def assign(customer_id: str, arms: Sequence[ArmSpec], experiment: str) -> str | None:
    """The arm of one customer in Python (the SQL's twin, for previews and tests)."""
    import hashlib

    bucket = int(hashlib.md5(f"{customer_id}:arm:{experiment}".encode()).hexdigest()[:8], 16)
    bucket %= BUCKETS
    return next((name for name, upper in thresholds(arms) if bucket < upper), None)
