"""Contract rules evaluated in plain Python: the reference semantics of every row-level rule.

The warehouse enforces the rules as SQL (rules_sql.py, DuckDB and Postgres dialects); this module
states the same rules in plain Python (re, datetime, decimal) so that bring-your-own tooling (a
stream processor, a form validator, another warehouse) can reproduce the quarantine verdicts
exactly. tests/e2e/test_rule_conformance.py runs every rule of every contract through DuckDB,
Postgres and this module on the same rows and requires identical verdicts.

Input rows are text (a staged batch is all-varchar): each value is a `str` or `None`.

Rule semantics (docs/data-quality.md has the long form)
--------------------------------------------------------
*trim* removes Unicode space separators (general category Zs: U+0020, U+00A0, U+1680,
U+2000-U+200A, U+202F, U+205F, U+3000; the set DuckDB's `trim(x)` removes) from both ends;
tabs, newlines and zero-width characters are kept (Postgres: `btrim(x, SPACES)`). A value is *missing* when it is null or
empty after trim. Let `t` be the trimmed value.

- required: the value is missing.
- type (fields whose logicalType is not string; a missing value never breaks a type rule --
  that is the required rule's job): `t` must match the type's format guard (TYPE_FORMATS, regexes
  in the shared subset) and then:
  - integer: plain decimal digits with an optional sign, in the int64 range (no `1_000`, `1e3`,
    `5.0`, `0x1F`);
  - number: plain decimal notation (`12.50`, `-3`, `.5`, `5.`; no exponent, no NaN/Infinity);
    rounded half away from zero to 2 decimals it must fit decimal(18,2) (|v| < 10^16);
  - date: `YYYY-MM-DD`, a real Gregorian calendar day, year 0001-9999 (no 2026-02-30);
  - timestamp: `YYYY-MM-DD`, optionally followed by `T` or one space and `HH:MM`, optional
    `:SS`, optional `.` and 1-9 fraction digits, optional zone `Z`, `+HH`, `+HH:MM` or `+HHMM`
    (sign + or -, zone hours 00-15); hours 00-23, minutes and seconds 00-59 (no leap second, no
    24:00); the date part must be a real day as for date. No zone means UTC.
  - boolean: case-insensitive `true false t f yes no y n 1 0`.
- pattern: the value (untrimmed) is present and does not fully match the pattern. Patterns must
  lie in the shared regex subset (below); a pattern outside it is refused, never approximated.
- minimum (integer and number fields only): the value is a valid value of the field's type and
  its typed value (int64; decimal(18,2) after rounding) is below the minimum. A value that is
  not of the type breaks only the type rule.
- validValues: the value (untrimmed, case-sensitive, exact code points) is present and not one
  of the listed values.

Severity: a row breaking an `error` rule is quarantined; a `warning` rule keeps the row. On a
field declared `onInvalid: nullify` (customProperties of the property) every rule is a warning
that also nulls the value: the row lands without it (`nulled_rules`, `landed_row`).

The shared regex subset (`shared_regex_problems`)
-------------------------------------------------
DuckDB uses RE2, Postgres its ARE engine, Python `re`; a contract pattern is matched against the
whole value (DuckDB `regexp_full_match`, Postgres `~ '^(?:p)$'`, Python `re.fullmatch`). Allowed:

- printable ASCII only (U+0020-U+007E) in the pattern; values may hold any characters;
- `^` only as the first and `$` only as the last character;
- literal characters; `\\` followed by ASCII punctuation is that literal character;
- bracket expressions `[...]` / `[^...]` of literal characters and ranges `a-z`, `A-Z`, `0-9`
  (both ends of the same kind, ascending); `-` only first or last; no `\\`, `[` or `]` inside
  (no POSIX classes `[:alpha:]`, no nesting), no doubled `&&`, `||`, `~~`, `--` (Python warns of
  future set operations), not empty;
- groups `(...)` and `(?:...)`, alternation `|` with non-empty alternatives;
- greedy quantifiers `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` with n <= m <= 255 (Postgres' limit)
  after an atom.

Refused, because the engines disagree or one lacks it: `.` outside brackets (Postgres' `.`
matches a newline, RE2's and Python's do not; write `[.]` for a dot); `\\d \\w \\s \\b` and every
other backslash-letter or backslash-digit escape (Unicode digits and word characters differ;
backreferences `\\1`); lookarounds `(?=` `(?!` `(?<=` `(?<!`, named groups, inline flags `(?i)`;
lazy `*?` and possessive `*+` quantifiers; `{,m}`; anchors inside the pattern; non-ASCII pattern
characters.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from decimal import ROUND_HALF_UP, Decimal

from orchestration.contracts.model import Contract, Field, Rule

# Format guards of the type rules: one regex per logicalType, used by all three evaluators.
_DAY = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
TYPE_FORMATS: dict[str, str] = {
    "integer": r"^[+-]?[0-9]+$",
    "number": r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)$",
    "date": rf"^{_DAY}$",
    "timestamp": (
        rf"^{_DAY}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{{1,9}})?)?"
        r"(Z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)?)?$"
    ),
    "boolean": r"^([Tt]([Rr][Uu][Ee])?|[Ff]([Aa][Ll][Ss][Ee])?|[Yy]([Ee][Ss])?|[Nn][Oo]?|[01])$",
}
INT64_MAX = "9223372036854775807"  # the magnitude limit as digits (negative: one more)
NUMBER_LIMIT = Decimal(10) ** 16  # decimal(18,2): |rounded value| < 10^16
CENT = Decimal("0.01")


# Unicode category Zs: what DuckDB's trim() removes; not tabs, newlines or zero-width spaces.
SPACES = "\u0020\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"


def trim(value: str) -> str:
    """SQL `trim(x)` of DuckDB: space separators (SPACES) off both ends."""
    return value.strip(SPACES)


def is_missing(value: str | None) -> bool:
    return value is None or trim(value) == ""


def _date_is_real(t: str) -> bool:
    """`t` starts with a guarded YYYY-MM-DD: a real Gregorian day, year >= 1."""
    try:
        dt.date(int(t[0:4]), int(t[5:7]), int(t[8:10]))
    except ValueError:
        return False
    return True


def _digits(t: str) -> tuple[bool, str]:
    """(negative, digits without sign and leading zeros) of a guarded integer or number."""
    negative = t.startswith("-")
    return negative, t.lstrip("+-")


def int_value(t: str) -> int | None:
    """The int64 value of a trimmed text, None when it is not a valid integer."""
    if not re.fullmatch(TYPE_FORMATS["integer"], t):
        return None
    negative, unsigned = _digits(t)
    digits = unsigned.lstrip("0") or "0"
    limit = str(int(INT64_MAX) + negative)
    if len(digits) > len(limit) or (len(digits) == len(limit) and digits > limit):
        return None
    return -int(digits) if negative else int(digits)


def number_value(t: str) -> Decimal | None:
    """The decimal(18,2) value (rounded half away from zero) of a trimmed text, else None."""
    if not re.fullmatch(TYPE_FORMATS["number"], t):
        return None
    negative, unsigned = _digits(t)
    whole, _, fraction = unsigned.partition(".")
    whole = whole.lstrip("0")
    if len(whole) > 16:
        return None
    # Rounding to 2 decimals half away from zero depends on the first 3 fraction digits only.
    magnitude = Decimal(f"{whole or '0'}.{(fraction + '000')[:3]}").quantize(CENT, ROUND_HALF_UP)
    if magnitude >= NUMBER_LIMIT:
        return None
    return -magnitude if negative else magnitude


def is_valid_type(logical_type: str, t: str) -> bool:
    """Does trimmed, non-empty text `t` parse as `logical_type`?"""
    if logical_type == "string":
        return True
    if logical_type == "integer":
        return int_value(t) is not None
    if logical_type == "number":
        return number_value(t) is not None
    if not re.fullmatch(TYPE_FORMATS[logical_type], t):
        return False
    if logical_type in ("date", "timestamp"):
        return _date_is_real(t)
    return True  # boolean: the guard is the whole rule


def minimum_operand(minimum: float) -> Decimal:
    """The rule's minimum as an exact decimal (as written in SQL)."""
    return Decimal(repr(float(minimum)))


def minimum_literal(minimum: float) -> str:
    return format(minimum_operand(minimum), "f")


def violates(rule: Rule, field: Field, value: str | None) -> bool:
    """True when `value` (text or None) breaks `rule` of `field`."""
    if rule.kind == "required":
        return is_missing(value)
    if rule.kind == "type":
        return not is_missing(value) and not is_valid_type(field.logical_type, trim(value))
    if rule.kind == "pattern":
        assert rule.pattern is not None
        return not is_missing(value) and compiled(rule.pattern).fullmatch(value) is None
    if rule.kind == "minimum":
        if is_missing(value):
            return False
        t = trim(value)
        if field.logical_type == "integer":
            typed: int | Decimal | None = int_value(t)
        elif field.logical_type == "number":
            typed = number_value(t)
        else:
            raise ValueError(minimum_type_error(rule, field))
        return typed is not None and typed < minimum_operand(rule.minimum)
    if rule.kind == "validValues":
        return not is_missing(value) and value not in rule.valid_values
    raise ValueError(f"unknown rule kind {rule.kind}")


def minimum_type_error(rule: Rule, field: Field) -> str:
    return (
        f"rule {rule.rule_id}: minimum needs an integer or number field, "
        f"{field.name} is {field.logical_type}"
    )


def failed_rules(
    contract: Contract, row: dict[str, str | None], severity: str = "error"
) -> list[str]:
    """The ids of the `severity` rules `row` breaks, in contract order (the first is the reason).

    A column absent from `row` counts as null (as a landing file without that column)."""
    return [
        r.rule_id
        for r in contract.rules
        if r.severity == severity and violates(r, contract.field(r.column), row.get(r.column))
    ]


def nulled_rules(contract: Contract, row: dict[str, str | None]) -> list[str]:
    """The ids of the nullify rules (`onInvalid: nullify` fields) `row` breaks, contract order.

    They are warning rules (also in failed_rules(..., "warning")); each nulls its column."""
    return [
        r.rule_id
        for r in contract.nullify_rules
        if violates(r, contract.field(r.column), row.get(r.column))
    ]


def landed_row(contract: Contract, row: dict[str, str | None]) -> dict[str, str | None]:
    """`row` as it lands when it breaks no error rule: the columns of the nullify rules it
    breaks are null, every other value as is (text; typing is the warehouse's)."""
    nulled = {r.column for r in contract.nullify_rules if r.rule_id in nulled_rules(contract, row)}
    return {k: (None if k in nulled else v) for k, v in row.items()}


# -- the shared regex subset ----------------------------------------------------------------

_PUNCT = frozenset(string.punctuation)
_QUANT = frozenset("*+?")
_BOUND = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")
MAX_REPEAT = 255


def _range_kind(c: str) -> str | None:
    if c.isascii() and c.isdigit():
        return "digit"
    if c.isascii() and c.islower():
        return "lower"
    if c.isascii() and c.isupper():
        return "upper"
    return None


def _bracket(p: str, i: int, problems: list[str]) -> int:
    """Check the bracket expression opening at p[i] == '['; return the index after its ']'."""
    j = i + 1
    if j < len(p) and p[j] == "^":
        j += 1
    start = j
    items: list[str] = []
    while j < len(p) and p[j] != "]":
        c = p[j]
        if c in "\\[":
            problems.append(f"{c!r} inside brackets at {j} (escapes, POSIX classes, nesting)")
        items.append(c)
        j += 1
    if j >= len(p):
        problems.append(f"unterminated bracket expression at {i}")
        return j
    if not items:
        problems.append(f"empty bracket expression at {i}")
    body = "".join(items)
    for doubled in ("&&", "||", "~~", "--"):
        if doubled in body:
            problems.append(f"{doubled!r} inside brackets at {start} (set operations in Python)")
    k = 0
    while k < len(items):
        if items[k] == "-" and 0 < k < len(items) - 1:
            lo, hi = items[k - 1], items[k + 1]
            kind = _range_kind(lo)
            if kind is None or kind != _range_kind(hi) or lo > hi:
                problems.append(f"range {lo}-{hi} at {start + k - 1}: only a-z, A-Z, 0-9 ranges")
            if k >= 2 and items[k - 2] == "-" and k - 2 > 0:
                problems.append(f"chained range at {start + k - 1}")
        k += 1
    return j + 1


def shared_regex_problems(pattern: str) -> list[str]:
    """Why `pattern` is outside the regex subset DuckDB, Postgres and Python share ([] = inside).

    The subset is defined in this module's docstring."""
    p = pattern
    problems: list[str] = []
    if not p:
        return ["empty pattern"]
    bad = sorted({c for c in p if not (" " <= c <= "~")})
    if bad:
        problems.append(f"non-ASCII or control characters {bad!r}")
    i = 0
    depth = 0
    can_repeat = False  # an atom precedes: a quantifier may follow
    alternative_empty = True  # nothing since the last '(' or '|' or the start
    while i < len(p):
        c = p[i]
        if c == "^":
            if i != 0:
                problems.append(f"'^' at {i}: only allowed as the first character")
            i += 1
            continue
        if c == "$":
            if i != len(p) - 1:
                problems.append(f"'$' at {i}: only allowed as the last character")
            elif alternative_empty:
                problems.append("empty alternative before '$'")
            i += 1
            continue
        if c == "\\":
            nxt = p[i + 1] if i + 1 < len(p) else ""
            if nxt not in _PUNCT:
                problems.append(f"escape \\{nxt} at {i}: only backslash + punctuation")
            i += 2
            can_repeat, alternative_empty = True, False
            continue
        if c == "[":
            i = _bracket(p, i, problems)
            can_repeat, alternative_empty = True, False
            continue
        if c == "(":
            if p.startswith("(?", i) and not p.startswith("(?:", i):
                problems.append(f"group modifier {p[i : i + 4]!r} at {i}: only (?: is shared")
            i += 3 if p.startswith("(?", i) else 1
            depth += 1
            can_repeat, alternative_empty = False, True
            continue
        if c == ")":
            if depth == 0:
                problems.append(f"unbalanced ')' at {i}")
            elif alternative_empty:
                problems.append(f"empty group or alternative before ')' at {i}")
            depth = max(depth - 1, 0)
            i += 1
            can_repeat, alternative_empty = True, False
            continue
        if c == "|":
            if alternative_empty:
                problems.append(f"empty alternative before '|' at {i}")
            i += 1
            can_repeat, alternative_empty = False, True
            continue
        if c in _QUANT or c == "{":
            if c == "{":
                m = _BOUND.match(p, i)
                if not m:
                    problems.append(f"'{{' at {i} is not a bound {{n}}, {{n,}} or {{n,m}}")
                    i += 1
                    continue
                lo, hi = int(m.group(1)), m.group(3)
                if (hi and int(hi) < lo) or max(lo, int(hi or 0)) > MAX_REPEAT:
                    problems.append(f"bound {m.group(0)} at {i}: need n <= m <= {MAX_REPEAT}")
                end = m.end()
            else:
                end = i + 1
            if not can_repeat:
                problems.append(f"quantifier {p[i:end]!r} at {i} does not follow an atom")
            if end < len(p) and (p[end] in _QUANT or p[end] == "{"):
                problems.append(f"{p[end]!r} after quantifier at {end} (lazy/possessive/stacked)")
            i = end
            can_repeat = False
            continue
        if c == ".":
            problems.append(f"'.' at {i}: engines disagree on newlines, write [.] for a dot")
        elif c in "]}":
            problems.append(f"unescaped {c!r} at {i}")
        i += 1
        can_repeat, alternative_empty = True, False
    if depth:
        problems.append("unbalanced '('")
    if alternative_empty and not p.endswith("$"):
        problems.append("empty alternative at the end")
    if not problems:
        try:
            re.compile(p)
        except re.error as exc:
            problems.append(f"does not compile in Python: {exc}")
    return problems


_COMPILED: dict[str, re.Pattern[str]] = {}


def compiled(pattern: str) -> re.Pattern[str]:
    """The compiled contract pattern; ValueError when it is outside the shared subset."""
    found = _COMPILED.get(pattern)
    if found is None:
        problems = shared_regex_problems(pattern)
        if problems:
            raise ValueError(f"pattern {pattern!r} is outside the shared regex subset: {problems}")
        found = _COMPILED[pattern] = re.compile(pattern)
    return found
