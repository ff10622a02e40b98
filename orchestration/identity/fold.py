"""Unicode folding of names and address parts for match keys, identical in Python and SQL.

A key part is folded in three steps, the same everywhere:

1. every character of TABLE is replaced by its fold: Latin letters with accents, ligatures,
   full-width forms and letters Unicode does not decompose (ß, Ø, Ł, Æ, Œ, Þ, Đ, ...) become
   lower-case ASCII (`Müller` → `muller`, `ﬁ` → `fi`, `Ｍ` → `m`, `straße` → `strasse`);
2. everything but ASCII letters and digits is removed (spaces, punctuation, combining marks of
   decomposed input, scripts the table does not cover);
3. ASCII is lower-cased.

TABLE is built here from the Unicode database (`unicodedata`, NFKD then combining marks dropped,
lower-cased) plus TRANSLITERATION for the letters NFKD leaves whole, over the Latin blocks and the
full-width forms (DOMAIN). dbt runs the same three steps with the macro `fold_key`
(dbt_project/macros/fold.sql: translate() and regexp_replace() with this table, then the regex and
lower(), plain SQL on DuckDB and Postgres); `python -m orchestration.identity.fold` prints the
macro's table, and tests/unit/test_unicode_keys.py checks every character of DOMAIN folds the same
in DuckDB and here. Step 3 runs after step 2 so no engine's locale-dependent lower() of a
non-ASCII letter can matter.
"""

from __future__ import annotations

import re
import unicodedata

# Letters NFKD does not decompose, folded the way they are usually written in ASCII.
TRANSLITERATION = {
    "ß": "ss", "ẞ": "ss", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ø": "o", "Ø": "o",
    "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th",
    "ħ": "h", "Ħ": "h", "ı": "i", "ŀ": "l", "Ŀ": "l", "ŧ": "t", "Ŧ": "t", "ƒ": "f",
}  # fmt: skip

# Latin-1 Supplement letters, Latin Extended-A and -B, Latin Extended Additional, ligatures,
# full-width ASCII.
DOMAIN = (
    *range(0x00C0, 0x0250), *range(0x1E00, 0x1F00), *range(0xFB00, 0xFB07),
    *range(0xFF01, 0xFF5F),
)  # fmt: skip

_NOT_KEY = re.compile(r"[^A-Za-z0-9]")


def _fold_char(char: str) -> str:
    parts = []
    for c in unicodedata.normalize("NFKD", char):
        if unicodedata.combining(c):
            continue
        parts.append(TRANSLITERATION.get(c, c))
    return _NOT_KEY.sub("", "".join(parts)).lower()


def _table() -> dict[str, str]:
    out = {}
    for cp in DOMAIN:
        char = chr(cp)
        folded = _fold_char(char)
        if folded:
            out[char] = folded
    return out


TABLE: dict[str, str] = _table()
_TRANSLATE = str.maketrans(TABLE)


def fold(text: str | None) -> str | None:
    """The key form of one name or address part (None stays None; '' when nothing is left)."""
    if text is None:
        return None
    return _NOT_KEY.sub("", text.translate(_TRANSLATE)).lower()


def ascii_spelling(text: str) -> str:
    """`text` with accents dropped and other letters transliterated, case and spaces kept
    (`Müller` → `Muller`, `Søren` → `Soren`): how a system without Unicode stores a name."""
    out = []
    for char in text:
        folded = TABLE.get(char)
        if folded is None:
            out.append(char)
        elif char.isupper() or unicodedata.category(char) == "Lu":
            out.append(folded[0].upper() + folded[1:])
        else:
            out.append(folded)
    return "".join(out)


def sql_table() -> tuple[str, str, dict[str, str]]:
    """(translate from, translate to, {fold: the characters folding to it}) for the fold_key
    macro: translate() takes the one-letter folds, one regexp_replace() each longer fold."""
    single = {c: f for c, f in TABLE.items() if len(f) == 1}
    multi: dict[str, str] = {}
    for c, f in TABLE.items():
        if len(f) > 1:
            multi[f] = multi.get(f, "") + c
    return "".join(single), "".join(single.values()), multi


def macro_lines() -> list[str]:
    """The Jinja set lines of the fold_key macro (dbt_project/macros/fold.sql)."""
    source, target, multi = sql_table()
    pairs = ", ".join(f"'{f}': '{chars}'" for f, chars in multi.items())
    return [
        f"{{%- set fold_from = '{source}' -%}}",
        f"{{%- set fold_to = '{target}' -%}}",
        f"{{%- set fold_multi = {{{pairs}}} -%}}",
    ]


if __name__ == "__main__":
    print("\n".join(macro_lines()))
