"""Live-extraction config, read from env vars only (the one place; `.env.example` lists them).

Per source `<S>` in (CRM, SHOP): `C360_<S>_MODE` = `files` (default) | `live`, and
`C360_<S>_LOOKBACK_SECONDS` (default 3600): how far before the published cursor each extraction
starts again, to catch transactions that commit late. Secrets (DSN, token) are never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from orchestration.int_setting import int_setting

LIVE_SOURCES = ("crm", "shop")


class LiveConfigError(ValueError):
    """Live mode is asked for but its config is missing or invalid; names the env var."""


@dataclass(frozen=True)
class CrmConfig:
    dsn: str = ""  # libpq DSN or postgresql:// URL (may hold a password: never logged)
    schema: str = "public"
    lookback_seconds: int = 3600
    chunk_size: int = 10_000

    def __repr__(self) -> str:  # no DSN in reprs, tracebacks or logs
        return f"CrmConfig(schema={self.schema!r}, lookback_seconds={self.lookback_seconds})"


@dataclass(frozen=True)
class ShopConfig:
    api_url: str = ""
    token: str | None = None  # bearer token (C360_SHOP_API_TOKEN); never logged
    lookback_seconds: int = 3600
    page_size: int = 100
    max_attempts: int = 5  # per request, 429 / 5xx / connection errors included
    max_retry_delay: float = 60.0  # seconds; a longer Retry-After is capped here
    timeout: float = 30.0

    def __repr__(self) -> str:
        return (
            f"ShopConfig(api_url={self.api_url!r}, lookback_seconds={self.lookback_seconds}, "
            f"page_size={self.page_size}, max_attempts={self.max_attempts})"
        )


def _int(name: str, default: int, env: dict[str, str]) -> int:
    raw = env.get(name)
    return int_setting(name, raw, 0, LiveConfigError) if raw else default


def source_mode(source: str, env: dict[str, str] | None = None) -> str:
    """`files` or `live` for `source` (C360_<SOURCE>_MODE)."""
    env = dict(os.environ) if env is None else env
    name = f"C360_{source.upper()}_MODE"
    mode = (env.get(name) or "files").strip().lower()
    if mode not in ("files", "live"):
        raise LiveConfigError(f"{name} must be 'files' or 'live', got {mode!r}")
    if mode == "live" and source not in LIVE_SOURCES:
        raise LiveConfigError(f"{name}=live: live mode exists for {', '.join(LIVE_SOURCES)} only")
    return mode


def crm_config(env: dict[str, str] | None = None) -> CrmConfig:
    env = dict(os.environ) if env is None else env
    dsn = env.get("C360_CRM_DSN") or ""
    if not dsn:
        raise LiveConfigError("C360_CRM_MODE=live needs C360_CRM_DSN (the CRM Postgres DSN)")
    return CrmConfig(
        dsn=dsn,
        schema=env.get("C360_CRM_SCHEMA") or "public",
        lookback_seconds=_int("C360_CRM_LOOKBACK_SECONDS", 3600, env),
        chunk_size=max(1, _int("C360_CRM_CHUNK_SIZE", 10_000, env)),
    )


def shop_config(env: dict[str, str] | None = None) -> ShopConfig:
    env = dict(os.environ) if env is None else env
    url = (env.get("C360_SHOP_API_URL") or "").rstrip("/")
    if not url:
        raise LiveConfigError("C360_SHOP_MODE=live needs C360_SHOP_API_URL (the shop API base URL)")
    return ShopConfig(
        api_url=url,
        token=env.get("C360_SHOP_API_TOKEN") or None,
        lookback_seconds=_int("C360_SHOP_LOOKBACK_SECONDS", 3600, env),
        page_size=max(1, _int("C360_SHOP_PAGE_SIZE", 100, env)),
        max_attempts=max(1, _int("C360_SHOP_MAX_ATTEMPTS", 5, env)),
        max_retry_delay=float(_int("C360_SHOP_MAX_RETRY_DELAY_SECONDS", 60, env)),
    )
