"""What the activation steps do differently per warehouse engine (engine.Connection): the few
statements DuckDB and Postgres write or answer differently, in one place (grain: one helper per
difference). The activation SQL is DuckDB's dialect, translated on Postgres (engine.transpile);
these are the forms it cannot translate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from orchestration.contracts.rules_sql import quote_literal


def constraint_errors() -> tuple[type[BaseException], ...]:
    """The errors a statement breaking a primary key raises, on either engine."""
    import duckdb
    import psycopg2

    return (duckdb.ConstraintException, psycopg2.IntegrityError)


def nul_byte_hash_sql(text_sqls: Sequence[str], dialect: str) -> str:
    """SQL of the md5 (hex) of the values' texts joined by the unit separator chr(31), a null
    value written as the byte 0 — the row hash of diff_sql as DuckDB has always computed it.
    Postgres text cannot hold a 0 byte: there the same bytes are joined as bytea (UTF-8), so
    both engines store the same hash for the same texts."""
    if not text_sqls:
        return "md5('')"
    if dialect == "duckdb":
        return "md5(" + " || chr(31) || ".join(f"coalesce({t}, chr(0))" for t in text_sqls) + ")"
    parts = [f"coalesce(convert_to({t}, 'UTF8'), cast('\\x00' as blob))" for t in text_sqls]
    return "md5(" + " || cast('\\x1f' as blob) || ".join(parts) + ")"


def json_object_text_sql(pairs: Sequence[tuple[str, str]], dialect: str) -> str:
    """SQL of the compact JSON text of an object (pairs: the key, and the SQL of its value), as
    DuckDB's json_object writes it: `{"a":1,"b":"x"}`, keys in the given order. Postgres'
    json_build_object puts spaces in, so there it is built from each value's to_json: the same
    text for texts, numbers, booleans, dates and nulls (a timestamp is written with a `T` there,
    and a whole double without `.0`)."""
    if dialect == "duckdb":
        args = ", ".join(f"{quote_literal(key)}, {value}" for key, value in pairs)
        return f"cast(json_object({args}) as varchar)"
    if not pairs:
        return "'{}'"
    items = " || ',' || ".join(
        f"{quote_literal(_KEY_ENCODER.encode(key) + ':')} || "
        f"coalesce(cast(to_json({value}) as varchar), 'null')"
        for key, value in pairs
    )
    return f"('{{' || {items} || '}}')"


_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False)  # a key as DuckDB's JSON writes it
