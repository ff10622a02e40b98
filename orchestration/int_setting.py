"""One integer setting read from an env var's text: the one check every env-configured module
shares (an integer, at least a minimum), raising the caller's own config error type."""

from __future__ import annotations


def int_setting(name: str, raw: str, minimum: int, error: type[Exception]) -> int:
    """`raw` (the text of env var `name`) as an integer >= `minimum`; otherwise `error` naming
    the variable and what is wrong with its value."""
    try:
        value = int(raw)
    except ValueError:
        raise error(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise error(f"{name} must be >= {minimum}, got {value}")
    return value
