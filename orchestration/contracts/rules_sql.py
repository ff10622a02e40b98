"""Contract rules → warehouse SQL predicates (the single place row-level rules are enforced).

Each predicate is TRUE when a row VIOLATES the rule. Input columns are text (staged batches are
all-varchar), so type rules test whether a value parses. Regexes stay within the subset DuckDB,
Postgres and Python share (character classes, anchors, quantifiers).
"""

from __future__ import annotations

from orchestration.contracts.model import Contract, Field, Rule

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


def _present(col: str) -> str:
    return f"({col} is not null and trim({col}) <> '')"


def violation_sql(rule: Rule, field: Field) -> str:
    """A DuckDB boolean expression over text column `rule.column`, true when the row breaks it."""
    col = quote_ident(rule.column)
    if rule.kind == "required":
        return f"not {_present(col)}"
    if rule.kind == "type":
        return (
            f"({_present(col)} and try_cast(trim({col}) as {_CASTS[field.logical_type]}) is null)"
        )
    if rule.kind == "pattern":
        assert rule.pattern is not None
        return f"({_present(col)} and not regexp_full_match({col}, {quote_literal(rule.pattern)}))"
    if rule.kind == "minimum":
        return f"(try_cast(trim({col}) as double) < {rule.minimum!r})"
    if rule.kind == "validValues":
        values = ", ".join(quote_literal(v) for v in rule.valid_values)
        return f"({_present(col)} and {col} not in ({values}))"
    raise ValueError(f"unknown rule kind {rule.kind}")


def failed_rules_sql(contract: Contract, severity: str = "error") -> str:
    """List expression of the rule ids a row breaks, in contract order (first = the reason)."""
    parts = [
        f"case when {violation_sql(r, contract.field(r.column))} then {quote_literal(r.rule_id)} end"
        for r in contract.rules
        if r.severity == severity
    ]
    if not parts:
        return "cast([] as varchar[])"
    return "list_filter([" + ", ".join(parts) + "], lambda x: x is not null)"


def typed_select_sql(contract: Contract) -> str:
    """Select list casting text columns to their contract types, for rows that passed every rule."""
    cols = []
    for f in contract.fields:
        c = quote_ident(f.name)
        if f.logical_type == "string":
            cols.append(f"nullif({c}, '') as {c}")
        elif f.logical_type == "timestamp":
            # Stored as naive UTC timestamp: portable to Postgres/Spark; the session zone is UTC.
            cols.append(f"cast(cast(nullif(trim({c}), '') as timestamptz) as timestamp) as {c}")
        else:
            cols.append(f"cast(nullif(trim({c}), '') as {_CASTS[f.logical_type]}) as {c}")
    return ", ".join(cols)


def reasons_by_rule(contract: Contract) -> dict[str, str]:
    return {r.rule_id: r.description for r in contract.rules}
