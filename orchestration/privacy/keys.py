"""The keyed hash behind tombstones and pseudonyms: HMAC-SHA-256 of `<kind>:<normalised value>`.

The key comes from `C360_ERASURE_KEY` (hex or any text, at least 32 characters). Without it a
random key is generated once per home in `<C360_HOME>/privacy/erasure.key` (mode 0600), so a
demo home works and its tombstones stay stable across nights; production sets the env var (a
lost key makes old tombstones unmatchable: erased people could come back). The key never leaves
the process and is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from orchestration.paths import c360_home

KEY_ENV = "C360_ERASURE_KEY"
MIN_KEY_CHARS = 32
PSEUDONYM_PREFIX = "erased:"


class ErasureKeyError(ValueError):
    """C360_ERASURE_KEY is set but too short to be a key."""


def _key_file() -> Path:
    return c360_home() / "privacy" / "erasure.key"


@lru_cache(maxsize=8)
def _key_for(env_value: str | None, key_file: str) -> bytes:
    if env_value:
        if len(env_value) < MIN_KEY_CHARS:
            raise ErasureKeyError(f"{KEY_ENV} must hold at least {MIN_KEY_CHARS} characters")
        return env_value.encode()
    path = Path(key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        os.replace(tmp, path)
    return path.read_text().strip().encode()


def erasure_key() -> bytes:
    """The key: C360_ERASURE_KEY, else the home's generated key file."""
    return _key_for(os.environ.get(KEY_ENV) or None, str(_key_file()))


def keyed_hash(kind: str, value: str) -> str:
    """HMAC-SHA-256 (hex) of `<kind>:<value>`; value already normalised (identifiers.normalise)."""
    return hmac.new(erasure_key(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def pseudonym(kind: str, value: str) -> str:
    """What replaces a value that must keep its grain but lose the person: 'erased:<16 hex>'."""
    return PSEUDONYM_PREFIX + keyed_hash(kind, value)[:16]
