"""The destination client of a diff-based sync, configured from env (secrets never from YAML)."""

from __future__ import annotations

from collections.abc import Callable

from orchestration.activation.destinations.webhook import WebhookClient, WebhookConfig
from orchestration.activation.diff_runner import Destination
from orchestration.activation.syncs import SyncDefinition

DIFF_DESTINATIONS = ("webhook", "postgres_table")


def make_destination(sync: SyncDefinition, log: Callable[[str], None]) -> Destination:
    """A client for `sync.destination`; raises WebhookConfigError / PostgresTableConfigError
    naming a missing env var or field. Close it after use when it has `close()`."""
    if sync.destination == "webhook":
        config = WebhookConfig.from_env()
        config = WebhookConfig(
            config.url, config.secret, max_rows=min(config.max_rows, sync.batch_rows),
            max_bytes=min(config.max_bytes, sync.batch_bytes),
            timeout_seconds=config.timeout_seconds,
        )  # fmt: skip
        return WebhookClient(config, sync.name, log=log)
    if sync.destination == "postgres_table":
        from orchestration.activation.destinations.postgres_table import PostgresTableDestination

        return PostgresTableDestination.from_sync(sync, log=log)
    raise ValueError(f"{sync.path}: destination {sync.destination!r} is not a diff-based sync")
