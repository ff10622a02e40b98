"""The destination client of a diff-based sync: the registry builds it (destinations/registry.py).
Kept for callers of make_destination; new code calls registry.build."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestration.activation.destinations import registry
from orchestration.activation.sync_definition import SyncDefinition


def make_destination(sync: SyncDefinition, log: Callable[[str], None]) -> Any:
    """A client for `sync.destination`; raises the destination's config error naming a missing
    env var or field. Close it after use when it has `close()`."""
    return registry.build(sync, log)


def diff_destinations() -> tuple[str, ...]:
    """The kinds run as diff syncs (every registered destination but file writers)."""
    return registry.kinds("diff")
