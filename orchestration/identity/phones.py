"""Phone numbers → E.164 with Google's libphonenumber (the `phonenumbers` package).

Grain of the lookup table `reference.phone_numbers`: one row per distinct (raw text, region hint)
ever seen in a phone column of a raw table. dbt's staging models read E.164 from it (macro
phone_e164), so the SQL never re-implements numbering plans. The table only grows: each run parses
the texts it has not seen before.

Region hint: the record's country where the source has one, else the configured default region
(`vars.identity.phone_default_region`, 'US'). A leading `00` is read as the international prefix
(libphonenumber only knows each region's own IDD, e.g. 011 in the US).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import phonenumbers
import pyarrow as pa
import yaml

from orchestration.contracts.identifier_columns import BY_TYPE, IdColumn, phone_columns
from orchestration.engine import Connection, table_names
from orchestration.paths import dbt_project_dir
from orchestration.warehouse import process_pool, worker_processes

TABLE = "reference.phone_numbers"


# Every raw column that carries a phone number, (contract id, column): from the one list of
# identifier columns (a unit test checks it against the contracts).
PHONE_INPUTS: tuple[tuple[str, IdColumn], ...] = phone_columns()


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "invalid_country_code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not_a_number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too_short_after_idd",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too_short",
    phonenumbers.NumberParseException.TOO_LONG: "too_long",
}


@dataclass(frozen=True)
class Parsed:
    e164: str | None
    is_valid: bool
    reason: str | None  # why e164 is null: parse error or impossible length


def default_region() -> str:
    doc = yaml.safe_load((dbt_project_dir() / "dbt_project.yml").read_text())
    return str(((doc.get("vars") or {}).get("identity") or {}).get("phone_default_region", "US"))


def _cleaned(text: str) -> str:
    cleaned = text.strip()
    return "+" + cleaned[2:] if cleaned.startswith("00") else cleaned


def to_e164(text: str, region: str, fallback_region: str = "US") -> Parsed:
    """E.164 of one phone text; null with a reason when it cannot be a phone number."""
    return _parse(_cleaned(text), (region or fallback_region).upper())


# A text of digits and the separators sources write (space, parentheses, dot, hyphen), with at
# most one leading '+', and at least three digits: libphonenumber reads only its digits and the
# plus (separators are dropped before any numbering-plan rule), so every such text with the same
# plus, digits and region parses alike. Fewer digits take the viability rule's two-digit case,
# which does look at the separators; over 250 characters the text itself is refused as too long.
# tests/unit/test_phones.py checks the equivalence.
_PLAIN = re.compile(r"\+?[0-9 ().\-]*")
_NON_DIGITS = re.compile(r"[^0-9]")
_MAX_TEXT = 250  # libphonenumber's longest input


def _plain_key(cleaned: str) -> str | None:
    if len(cleaned) > _MAX_TEXT or not _PLAIN.fullmatch(cleaned):
        return None
    digits = _NON_DIGITS.sub("", cleaned)
    if len(digits) < 3:
        return None
    return "+" + digits if cleaned.startswith("+") else digits


def to_e164_many(
    texts: Sequence[tuple[str, str]], fallback_region: str = "US", workers: int | None = None
) -> list[Parsed]:
    """to_e164 of each (text, region), in order. Texts that differ only in separators (_PLAIN)
    are parsed once, the region left out when the text starts with '+' (libphonenumber then
    reads the country from the number): one person's number is written in several styles
    across sources. Many texts are parsed in `workers` processes (default C360_DUCKDB_THREADS)."""
    jobs: dict[tuple[str, str], int] = {}  # (text to parse, region) → its index in `distinct`
    distinct: list[tuple[str, str]] = []
    slots = []
    for text, region in texts:
        cleaned, reg = _cleaned(text), (region or fallback_region).upper()
        key = _plain_key(cleaned)
        memo = (cleaned, reg) if key is None else (key, "" if key[0] == "+" else reg)
        slot = jobs.get(memo)
        if slot is None:
            slot = jobs[memo] = len(distinct)
            distinct.append((memo[0], reg))
        slots.append(slot)
    parsed = _parse_all(distinct, worker_processes() if workers is None else workers)
    return [parsed[i] for i in slots]


# Below this many texts the lookup is parsed in the step's own process: starting the workers
# (each imports libphonenumber's metadata) would cost more than it saves.
PARALLEL_FROM_TEXTS = 200_000


def _parse_all(items: list[tuple[str, str]], workers: int) -> list[Parsed]:
    if workers < 2 or len(items) < PARALLEL_FROM_TEXTS:
        return [_parse(text, region) for text, region in items]
    size = -(-len(items) // workers)
    parts = [items[i : i + size] for i in range(0, len(items), size)]
    with process_pool(len(parts)) as pool:
        return [p for part in pool.map(_parse_part, parts) for p in part]


def _parse_part(items: list[tuple[str, str]]) -> list[Parsed]:
    return [_parse(text, region) for text, region in items]


def _parse(cleaned: str, region: str) -> Parsed:
    try:
        number = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException as exc:
        return Parsed(None, False, f"unparseable: {_PARSE_ERRORS.get(exc.error_type, 'error')}")
    if not phonenumbers.is_possible_number(number):
        return Parsed(None, False, "impossible_number")
    # A possible but unassigned number (libphonenumber's "invalid") still names the same phone
    # in every source, so it links; is_valid is kept for reachability decisions.
    return Parsed(
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.is_valid_number(number),
        None,
    )


def ensure_table(con: Connection) -> None:
    con.execute("create schema if not exists reference")
    con.execute(
        f"""
        create table if not exists {TABLE} (
            raw_text varchar not null,
            region varchar not null,
            e164 varchar,
            is_valid boolean not null,
            reason varchar,
            first_seen_as_of date not null,
            primary key (raw_text, region)
        )
        """
    )


def inputs_sql(existing_tables: set[str], skip: frozenset[str] = frozenset()) -> str | None:
    """Every distinct (raw_text, region) the phone columns of the raw tables in
    `existing_tables` hold (but those of the tables in `skip`); None when there is none."""
    parts = []
    for table, col in PHONE_INPUTS:
        if table not in existing_tables or table in skip:
            continue
        region = f"coalesce(upper(trim({col.region_column})), '')" if col.region_column else "''"
        where = f"{col.column} is not null and trim({col.column}) <> ''"
        if col.kind == BY_TYPE:  # a consent contact point: only the rows typed phone
            where += f" and {col.type_column} = 'phone'"
        parts.append(
            f"select distinct {col.column} as raw_text, {region} as region "
            f"from raw.{table} where {where}"
        )
    return " union ".join(parts) if parts else None


def _new_inputs_sql(existing_tables: set[str]) -> str | None:
    inputs = inputs_sql(existing_tables)
    if inputs is None:
        return None
    return (
        f"select raw_text, region from ({inputs}) as inputs "
        f"where not exists (select 1 from {TABLE} as known "
        "where known.raw_text = inputs.raw_text and known.region = inputs.region) "
        "order by raw_text, region"
    )


def refresh(
    con: Connection,
    as_of: str,
    fallback_region: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Parse every (text, region) not in the lookup yet and append it. Returns counts.

    Runs on any warehouse `Connection` (DuckDB, Postgres through `engine.postgres`, Spark
    through `engine.spark`)."""
    ensure_table(con)
    fallback = fallback_region or default_region()
    existing = table_names(con, "raw")
    sql = _new_inputs_sql(existing)
    new = con.execute(sql).fetchall() if sql else []
    if progress and len(new) > 50_000:
        progress(f"phone numbers: parsing {len(new):,} new texts")
    rows = [
        (raw_text, region, parsed.e164, parsed.is_valid, parsed.reason)
        for (raw_text, region), parsed in zip(new, to_e164_many(new, fallback), strict=True)
    ]
    if rows:
        con.register("_phones", _frame(rows))
        try:
            con.execute(
                f"insert into {TABLE} select raw_text, region, e164, is_valid, reason, "
                "cast(? as date) from _phones",
                [as_of],
            )
        finally:
            con.unregister("_phones")
    stats = con.execute(
        f"select count(*), count(e164), count(*) filter (where not is_valid and e164 is not null) "
        f"from {TABLE}"
    ).fetchone()
    return {
        "new_texts": len(rows),
        "new_unusable": sum(1 for r in rows if r[2] is None),
        "total_texts": int(stats[0]),
        "total_e164": int(stats[1]),
        "total_possible_not_valid": int(stats[2]),
    }


def _frame(rows: list[tuple]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    return pa.table(
        {
            "raw_text": pa.array(cols[0], pa.string()),
            "region": pa.array(cols[1], pa.string()),
            "e164": pa.array(cols[2], pa.string()),
            "is_valid": pa.array(cols[3], pa.bool_()),
            "reason": pa.array(cols[4], pa.string()),
        }
    )
