"""Contract rules → warehouse SQL predicates (the single place row-level rules are enforced).

Each predicate is TRUE when a row VIOLATES the rule. Input columns are text (staged batches are
all-varchar), so type rules test whether a value parses. Three dialects: `duckdb` (the warehouse,
the default), `postgres` (no try_cast before PG 16, so every cast sits behind a format guard
inside CASE, which Postgres evaluates in order) and `spark` (DuckDB's SQL, translated, but for
trimming: Spark's trim() removes U+0020 only). The semantics are those of rules_python.py (the
reference, with the shared regex subset); tests/e2e/test_rule_conformance.py holds DuckDB,
Postgres and Python to the same verdicts on the same rows.
"""

from __future__ import annotations

from typing import Literal

from orchestration.contracts.model import Contract, Field, Rule
from orchestration.contracts.rules_python import (
    INT64_MAX,
    SPACES,
    TYPE_FORMATS,
    compiled,
    minimum_literal,
    minimum_type_error,
)

Dialect = Literal["duckdb", "postgres", "spark"]
DIALECTS: tuple[Dialect, ...] = ("duckdb", "postgres", "spark")

_CASTS = {
    "integer": "bigint",
    "number": "decimal(18,2)",
    "date": "date",
    "timestamp": "timestamptz",
    "boolean": "boolean",
}


def quote_literal(value: str) -> str:
    """SQL string literal with quotes doubled: values never become SQL."""
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def trim_sql(col: str, dialect: Dialect) -> str:
    """Space separators (Unicode Zs) off both ends; Postgres' and Spark's trim() remove U+0020
    only."""
    return f"trim({col})" if dialect == "duckdb" else f"btrim({col}, {quote_literal(SPACES)})"


def nonnull_list_sql(parts: list[str], dialect: Dialect) -> str:
    """A list (DuckDB varchar[]; Postgres text[]) of the non-null values of `parts` (text
    expressions), in order; an empty list when there are none."""
    if dialect == "postgres":
        if not parts:
            return "cast(array[] as text[])"
        return "array_remove(cast(array[" + ", ".join(parts) + "] as text[]), null)"
    if not parts:
        return "cast([] as varchar[])"
    return "list_filter([" + ", ".join(parts) + "], lambda x: x is not null)"


def _timestamp_text(t: str, dialect: Dialect) -> str:
    """Timestamp text as the engine's cast reads it. Spark's cast refuses a time without seconds
    followed by a zone (`10:00Z`, `10:00+01:00`), which the contract accepts: `:00` is added.
    (Written in Java's replacement syntax: the statement only ever reaches Spark.)"""
    if dialect != "spark":
        return t
    return f"regexp_replace({t}, '([T ][0-9][0-9]:[0-9][0-9])([Z+-])', '$1:00$2')"


def timestamp_or_null_sql(trimmed: str, dialect: Dialect) -> str:
    """Trimmed text `trimmed` as a timestamptz, null when it is not one; never fails. Postgres
    has no try_cast: the cast sits behind the contract's timestamp format, so only a value the
    type rule accepts is cast."""
    if dialect != "postgres":
        return f"try_cast({_timestamp_text(trimmed, dialect)} as timestamptz)"
    valid = _valid_type_sql("timestamp", trimmed, dialect)
    return f"(case when {valid} then cast({trimmed} as timestamptz) end)"


def _matches(expr: str, pattern: str, dialect: Dialect) -> str:
    """`expr` matches all of `pattern` (a pattern of the shared subset)."""
    if dialect != "postgres":
        return f"regexp_full_match({expr}, {quote_literal(pattern)})"
    return f"({expr} ~ {quote_literal('^(?:' + pattern + ')$')})"


def _cast(expr: str, type_: str, dialect: Dialect) -> str:
    # Only ever reached behind a guard; DuckDB's try_cast is belt and braces.
    return f"{'cast' if dialect == 'postgres' else 'try_cast'}({expr} as {type_})"


def _real_day(t: str, dialect: Dialect) -> str:
    """Text `t` starts with a guarded YYYY-MM-DD (month 01-12, day 01-31): a real day, year >= 1."""
    y = _cast(f"substr({t}, 1, 4)", "integer", dialect)
    m = _cast(f"substr({t}, 6, 2)", "integer", dialect)
    d = _cast(f"substr({t}, 9, 2)", "integer", dialect)
    leap = f"(({y} % 4 = 0 and {y} % 100 <> 0) or {y} % 400 = 0)"
    days = (
        f"case when {m} in (4, 6, 9, 11) then 30 when {m} = 2 then "
        f"case when {leap} then 29 else 28 end else 31 end"
    )
    return f"({y} >= 1 and {d} <= {days})"


def _unsigned(t: str) -> str:
    return f"ltrim({t}, '+-')"


def _sign(t: str) -> str:
    return f"case when left({t}, 1) = '-' then '-' else '' end"


def _int_digits(t: str) -> str:
    """Digits of a guarded integer without sign and leading zeros ('' for zero)."""
    return f"ltrim({_unsigned(t)}, '0')"


def _int_in_range(t: str) -> str:
    digits = _int_digits(t)
    return (
        f"(length({digits}) < 19 or (length({digits}) = 19 and ({digits} <= "
        f"{quote_literal(INT64_MAX)} or (left({t}, 1) = '-' and {digits} = "
        f"{quote_literal(str(int(INT64_MAX) + 1))}))))"
    )


def _int_value(t: str, dialect: Dialect) -> str:
    """bigint value of a valid integer (bounded text: never fails behind the guard)."""
    return _cast(f"{_sign(t)} || coalesce(nullif({_int_digits(t)}, ''), '0')", "bigint", dialect)


def _number_whole(t: str) -> str:
    return f"ltrim(split_part({_unsigned(t)}, '.', 1), '0')"


def _number_magnitude(t: str, dialect: Dialect) -> str:
    """|value| rounded half away from zero to 2 decimals; needs <= 16 whole digits.

    Rounding depends on the first 3 fraction digits only, so the cast text stays short."""
    text = (
        f"coalesce(nullif({_number_whole(t)}, ''), '0') || '.' || "
        f"left(split_part({_unsigned(t)}, '.', 2) || '000', 3)"
    )
    return f"round({_cast(text, 'decimal(19,3)', dialect)}, 2)"


def _number_value(t: str, dialect: Dialect) -> str:
    mag = _number_magnitude(t, dialect)
    return f"(case when left({t}, 1) = '-' then -{mag} else {mag} end)"


def _number_in_range(t: str, dialect: Dialect) -> str:
    whole = _number_whole(t)
    return (
        f"(case when length({whole}) < 16 then true when length({whole}) > 16 then false "
        f"else {_number_magnitude(t, dialect)} < 10000000000000000 end)"
    )


def _valid_type_sql(logical_type: str, t: str, dialect: Dialect) -> str:
    """Boolean over trimmed text `t`: it is a valid `logical_type` (false for null)."""
    guard = _matches(t, TYPE_FORMATS[logical_type], dialect)
    if logical_type == "integer":
        check = _int_in_range(t)
    elif logical_type == "number":
        check = _number_in_range(t, dialect)
    elif logical_type in ("date", "timestamp"):
        check = _real_day(t, dialect)
    elif logical_type == "boolean":
        check = "true"
    else:
        raise ValueError(f"no type rule for logicalType {logical_type!r}")
    return f"(case when {guard} then {check} else false end)"


def trimmed_column(column: str) -> str:
    """Name of the column holding the trimmed value of `column` (see trimmed_columns_sql)."""
    return f"_trimmed__{column}"


def trimmed_columns_sql(contract: Contract, dialect: Dialect = "duckdb") -> str:
    """Select items `trim(c) as _trimmed__c` for every column a rule reads (grain: one row).

    failed_rules_sql and violation_sql read these columns, so the relation they run on must
    select them: `select *, <trimmed_columns_sql> from batch`. Each value is then trimmed once
    per row, not once per use (the timestamp type rule alone uses it fifteen times; at 6.8M
    events the repeated trims were most of the verdicts' cost)."""
    columns = dict.fromkeys(r.column for r in contract.rules)
    return ", ".join(
        f"{trim_sql(quote_ident(c), dialect)} as {quote_ident(trimmed_column(c))}" for c in columns
    )


def violation_sql(
    rule: Rule, field: Field, dialect: Dialect = "duckdb", trimmed: str | None = None
) -> str:
    """A boolean expression over text column `rule.column`, true when the row breaks the rule.

    Reads the value as is and trimmed, from column trimmed_column(rule.column): the relation
    selects trimmed_columns_sql (or `trimmed`, an expression of the trimmed value)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}: one of {DIALECTS}")
    col = quote_ident(rule.column)
    t = trimmed or quote_ident(trimmed_column(rule.column))
    present = f"({col} is not null and {t} <> '')"
    if rule.kind == "required":
        return f"not {present}"
    if rule.kind == "type":
        return f"({present} and not {_valid_type_sql(field.logical_type, t, dialect)})"
    if rule.kind == "pattern":
        assert rule.pattern is not None
        compiled(rule.pattern)  # refuses a pattern outside the shared subset
        return f"({present} and not {_matches(col, rule.pattern, dialect)})"
    if rule.kind == "minimum":
        if field.logical_type == "integer":
            typed = _int_value(t, dialect)
        elif field.logical_type == "number":
            typed = _number_value(t, dialect)
        else:
            raise ValueError(minimum_type_error(rule, field))
        assert rule.minimum is not None
        valid = _valid_type_sql(field.logical_type, t, dialect)
        return f"(case when {valid} then {typed} < {minimum_literal(rule.minimum)} else false end)"
    if rule.kind == "validValues":
        values = ", ".join(quote_literal(v) for v in rule.valid_values)
        return f"({present} and {col} not in ({values}))"
    raise ValueError(f"unknown rule kind {rule.kind}")


def failed_rules_sql(
    contract: Contract, severity: str = "error", dialect: Dialect = "duckdb"
) -> str:
    """List/array expression of the rule ids a row breaks, in contract order (first = the reason).

    DuckDB: a varchar[] list; Postgres: a text[] array. Grain: one row of a relation holding the
    contract's text columns and trimmed_columns_sql (see violation_sql)."""
    parts = [
        f"case when {violation_sql(r, contract.field(r.column), dialect)} "
        f"then {quote_literal(r.rule_id)} end"
        for r in contract.rules
        if r.severity == severity
    ]
    return nonnull_list_sql(parts, dialect)


def nullified_sql(contract: Contract, field: Field, dialect: Dialect = "duckdb") -> str | None:
    """Boolean: the row breaks one of `field`'s nullify rules (its value lands null); None when
    the field has none. Reads the text column only (trims inline)."""
    rules = [r for r in contract.nullify_rules if r.column == field.name]
    if not rules:
        return None
    t = trim_sql(quote_ident(field.name), dialect)
    return "(" + " or ".join(violation_sql(r, field, dialect, trimmed=t) for r in rules) + ")"


def nulled_rules_sql(contract: Contract, dialect: Dialect = "duckdb") -> str:
    """List of the nullify rule ids a row breaks, in contract order (grain: one row of a
    relation holding the contract's text columns and trimmed_columns_sql)."""
    parts = [
        f"case when {violation_sql(r, contract.field(r.column), dialect)} "
        f"then {quote_literal(r.rule_id)} end"
        for r in contract.nullify_rules
    ]
    return nonnull_list_sql(parts, dialect)


def typed_select_sql(contract: Contract, dialect: Dialect = "duckdb") -> str:
    """Select list casting text columns to their contract types, for rows that passed every
    error rule. A value breaking a nullify rule of its field (`onInvalid: nullify`) is null: the
    row lands without it (the cast is behind the rule, so an invalid value never reaches it)."""
    cols = []
    for f in contract.fields:
        c = quote_ident(f.name)
        t = trim_sql(c, dialect)
        if f.logical_type == "string":
            typed = f"nullif({c}, '')"
        elif f.logical_type == "timestamp":
            # Stored as naive UTC timestamp: portable to Postgres/Spark; the session zone is UTC.
            text = _timestamp_text(f"nullif({t}, '')", dialect)
            typed = f"cast(cast({text} as timestamptz) as timestamp)"
        else:
            typed = f"cast(nullif({t}, '') as {_CASTS[f.logical_type]})"
        nulled = nullified_sql(contract, f, dialect)
        if nulled is not None:
            typed = f"case when {nulled} then null else {typed} end"
        cols.append(f"{typed} as {c}")
    return ", ".join(cols)


def reasons_by_rule(contract: Contract) -> dict[str, str]:
    return {r.rule_id: r.description for r in contract.rules}
