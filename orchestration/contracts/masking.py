"""Mask personal data before it leaves warehouse tables (check metadata, logs, reports, CLI)."""

from __future__ import annotations

from typing import Any

from orchestration.contracts.model import Contract


def mask_value(value: Any) -> str:
    """Keep a hint of the shape, never the value: 'jane.doe@x.com' → 'j***@***.com'."""
    if value is None:
        return ""
    text = str(value)
    if not text:
        return ""
    if "@" in text:
        local, _, domain = text.partition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}***@***.{tld}" if tld else f"{local[:1]}***@***"
    digits = [c for c in text if c.isdigit()]
    if len(digits) >= 6:
        return "***" + "".join(digits[-2:])
    return text[:1] + "***"


def mask_row(contract: Contract, row: dict[str, Any]) -> dict[str, Any]:
    """Mask every PII column of the contract in one row (a dict); other columns pass through."""
    pii = set(contract.pii_columns)
    return {k: (mask_value(v) if k in pii else v) for k, v in row.items()}
