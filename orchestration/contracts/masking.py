"""Mask personal data before it leaves warehouse tables (check metadata, logs, reports, CLI).

Masking is by allow-list: a value keeps a hint of its shape only when it is a syntactically
clean value of the kind its column holds, and everything else is fully masked:

* a clean e-mail (one @, a plain local part, a dotted domain whose TLD is 2-24 letters, no
  spaces, commas, semicolons or quotes, at most 254 chars) -> 'j***@***.com';
* a clean phone (digits, '+', spaces, dashes, dots and brackets only; 7-15 digits; not a date)
  -> '***42';
* a clean name (letters, spaces, hyphens, apostrophes, dots; at most 40 chars and 4 words)
  -> 'J***';
* anything else -> '***' ('***[n chars]' past 64 chars): a ragged CSV line read as one value, an
  oversized field, a phone in the e-mail column, a birth date, an address, an unknown kind.

`mask_row` / `mask_cell` apply this with the contract: a PII column is masked as the kind its
name says (email, phone, name; other PII columns such as dates of birth and addresses are fully
masked); a non-PII column passes through only when its value is plausible for the column (its
logical type, no '@', not phone- or date-shaped where no date belongs, no delimiters, short,
and it keeps the column's own pattern and validValues rules) and is fully masked otherwise; a
column the contract does not know, and every column of a row that looks ragged (a value holding
the delimiter, a raw line, a column named after the whole header), is masked as 'auto' (the
hint of whatever clean kind it is, else fully). Provenance columns ('_source_file', ...) pass.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from orchestration.contracts.model import Contract, Field
from orchestration.contracts.rules_python import violates

Kind = Literal["email", "phone", "name", "auto", "other"]

FULL = "***"
LONG_VALUE = 64  # past this many characters a full mask also says how long the value was

_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9](?:[A-Za-z0-9._%+\-']{0,63}))@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+)"
    r"(?P<tld>[A-Za-z]{2,24})"
)
_PHONE = re.compile(r"\+?[0-9 ().\-]{7,25}")
# dates and timestamps in the shapes exports use: 1977-03-04, 04/03/1977, 2026-01-01T09:00:00Z
_DATE = re.compile(
    r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)?"
)
_NAME = re.compile(r"[^\W\d_](?:[^\W\d_]|[ '\-.’])*")
_INTEGER = re.compile(r"[+-]?\d{1,20}")
_NUMBER = re.compile(r"[+-]?(?:\d{1,20}(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
_BOOLEAN = re.compile(r"(?i)true|false|t|f|yes|no|y|n|0|1")
_EPOCH = re.compile(r"\d{9,13}(?:\.\d+)?")
# a non-PII string value shown as it is: word characters and a few separators, nothing else
_PLAIN = re.compile(r"[\w .:/+\-#&()]*")
# What mask_value emits: left as it is when masked again (a hint is never widened).
_MASKED = re.compile(
    r"[^\W_]?\*\*\*(?:@\*\*\*\.[A-Za-z]{2,24})?|\*\*\*\d{2}|\*\*\*(?:\[\d+ chars\])?"
)
# a raw line or ragged parse: a value (or a column name) holding the delimiter or a line break
_RAGGED = re.compile(r"[,;\t\r\n|]")
_STRUCTURED = (".jsonl", ".json", ".ndjson", ".parquet")
_READER_COLUMN = re.compile(r"column\d+")  # DuckDB's name for a field past the header


def full_mask(text: str) -> str:
    """The value fully masked: '***', or '***[n chars]' for a long one (an oversized field)."""
    return FULL if len(text) <= LONG_VALUE else f"{FULL}[{len(text)} chars]"


def clean_email(text: str) -> re.Match[str] | None:
    if len(text) > 254 or text.count("@") != 1:
        return None
    m = _EMAIL.fullmatch(text)
    if m is None or ".." in text or len(m.group("local")) > 64:
        return None
    return m


def clean_phone(text: str) -> str | None:
    """The digits of a clean phone number, or None."""
    if not _PHONE.fullmatch(text) or _DATE.fullmatch(text.strip()):
        return None
    digits = "".join(c for c in text if c.isdigit())
    return digits if 7 <= len(digits) <= 15 else None


def clean_name(text: str) -> bool:
    return len(text) <= 40 and len(text.split()) <= 4 and bool(_NAME.fullmatch(text))


def kind_of_column(column: str) -> Kind:
    """The kind of personal data a PII column holds, from its name: e-mail, phone, name, 'auto'
    (a contact point: an e-mail or a phone) or 'other' (dates of birth, addresses, postal codes:
    always fully masked)."""
    c = column.lower()
    if "email" in c or "e_mail" in c:
        return "email"
    if "phone" in c or "mobile" in c or c.endswith(("_tel", "telephone")):
        return "phone"
    if c.endswith("name"):
        return "name"
    if c == "contact_point" or c.endswith("_contact_point"):
        return "auto"
    return "other"


def mask_value(value: Any, kind: Kind = "auto") -> str:
    """Keep a hint of a clean value of `kind`, never the value; fully mask anything else.

    'jane.doe@x.com' -> 'j***@***.com' (email), '+1 415 555 0142' -> '***42' (phone),
    'Jane' -> 'J***' (name). 'auto' takes whichever of those the value cleanly is; 'other'
    always masks fully. A value already in a masked form is returned as it is."""
    if value is None:
        return ""
    text = str(value).strip() if isinstance(value, str) else str(value)
    if not text:
        return ""
    if _MASKED.fullmatch(text):
        return text
    if kind in ("email", "auto"):
        m = clean_email(text)
        if m is not None:
            return f"{m.group('local')[0]}***@***.{m.group('tld').lower()}"
    if kind in ("phone", "auto"):
        digits = clean_phone(text)
        if digits is not None:
            return FULL + digits[-2:]
    if kind in ("name", "auto") and clean_name(text):
        return text[0] + FULL
    return full_mask(text)


def _plausible(f: Field, text: str, contract: Contract) -> bool:
    """A non-PII column's text value may be shown as it is: it is what the column should hold
    and does not look like personal data (an e-mail, a phone, a date where none belongs)."""
    if len(text) > LONG_VALUE or "@" in text or _RAGGED.search(text):
        return False
    lt = f.logical_type
    is_date = bool(_DATE.fullmatch(text))
    if lt in ("date", "timestamp"):
        return is_date or bool(_EPOCH.fullmatch(text))
    if is_date:
        return False  # a date in a column that holds none: maybe a birth date
    if lt == "boolean":
        return bool(_BOOLEAN.fullmatch(text))
    if lt == "integer":
        return bool(_INTEGER.fullmatch(text))
    if lt == "number":
        return bool(_NUMBER.fullmatch(text))
    if not _PLAIN.fullmatch(text):
        return False
    if clean_phone(text) is not None and not (
        text.isdigit() and (f.primary_key or f.name.endswith("_id"))
    ):
        return False  # phone-shaped: only a bare number in an id column passes
    # the column's own pattern and validValues rules, with the quarantine's semantics
    return not any(
        rule.column == f.name
        and rule.kind in ("pattern", "validValues")
        and violates(rule, f, text)
        for rule in contract.rules
    )


def _is_provenance(column: str) -> bool:
    return column.startswith("_")


def row_is_ragged(contract: Contract, row: dict[str, Any]) -> bool:
    """The row does not look like a parse into the contract's columns: a column named with a
    delimiter (a header read as one column) or named by the reader for a field past the header
    ('column18'), or a delimiter inside a value no delimiter belongs in (a PII, typed or key
    column: a line read as one value, an unbalanced quote swallowing the next fields). A row
    read from a structured format (JSON lines, Parquet: by its `_source_file`) has no delimiter
    to be ragged by; a nested value there is a retyped column, masked as such."""
    source = str(row.get("_source_file") or "")
    structured = source.endswith(_STRUCTURED)
    for column, value in row.items():
        if _is_provenance(column):
            continue
        if _RAGGED.search(column) or _READER_COLUMN.fullmatch(column):
            return True
        if structured or column not in contract.column_names or not isinstance(value, str):
            continue
        f = contract.field(column)
        strict = f.is_pii or f.logical_type != "string" or f.primary_key or column.endswith("_id")
        if strict and _RAGGED.search(value):
            return True
    return False


def mask_cell(contract: Contract, column: str, value: Any, ragged: bool = False) -> Any:
    """One cell of a row leaving the warehouse, masked by allow-list (see the module docstring).
    `ragged`: the row's parse is ragged, so no column can be trusted to hold its own kind."""
    if isinstance(value, list | tuple):
        return [mask_cell(contract, column, v, ragged) for v in value]
    if _is_provenance(column):
        return value
    if value is None:
        return None
    known = column in contract.column_names
    if ragged or not known:
        if isinstance(value, bool | int | float | decimal.Decimal) and known:
            return value
        return mask_value(value, "auto")
    f = contract.field(column)
    if f.is_pii:
        if isinstance(value, bool):
            return value
        return mask_value(value, kind_of_column(column))
    if isinstance(value, bool | int | float | decimal.Decimal | dt.date | dt.datetime | dt.time):
        return value
    text = str(value)
    if not text or _MASKED.fullmatch(text):
        return text
    if _plausible(f, text, contract):
        return text
    return _mask_json(text) or full_mask(text)


def _mask_json_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and depth < 4:
        return {
            (k if len(k) <= 40 and _PLAIN.fullmatch(k) and "@" not in k else FULL): (
                _mask_json_value(v, depth + 1)
            )
            for k, v in list(value.items())[:20]
        }
    if isinstance(value, list) and depth < 4:
        return [_mask_json_value(v, depth + 1) for v in value[:5]]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and len(str(abs(value)).replace(".", "")) < 7:
        return value  # a small number (an amount, a count); 7+ digits may be a phone
    return mask_value(value, "auto")


def _mask_json(text: str) -> str | None:
    """A JSON object or array in a non-PII column (a retyped column, an event's properties) as
    its keys and masked values: the shape shows, no value does. None when not JSON."""
    if len(text) > 4096 or text[:1] not in "{[":
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict | list):
        return None
    return json.dumps(_mask_json_value(parsed), ensure_ascii=False)


def mask_row(contract: Contract, row: dict[str, Any]) -> dict[str, Any]:
    """Mask one row (a dict) by the contract: every PII column by its kind, every other value
    that is not plausible for its column, every column the contract does not know, and every
    value of a ragged row. Provenance columns ('_source_file', '_source_row', ...) pass."""
    ragged = row_is_ragged(contract, row)
    return {k: mask_cell(contract, k, v, ragged) for k, v in row.items()}


def mask_rows(contract: Contract, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [mask_row(contract, r) for r in rows]
