"""Source values → the landing text form file mode reads (so both modes land identical text)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any


def to_text(value: Any) -> str | None:
    """None stays null; timestamps → UTC 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'; dates ISO; booleans
    'true'/'false'; numbers as written (Decimal keeps its scale, '12.50')."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)  # naive = UTC by the time model
        value = value.astimezone(dt.UTC)
        return value.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
        )
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal | int | float):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"unsupported source value type {type(value).__name__}")


def utc_text(value: dt.datetime) -> str:
    out = to_text(value)
    assert out is not None
    return out
