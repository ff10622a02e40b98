"""Blocking for probabilistic matching, with a cap on the size of a block.

A blocking rule pairs the records that agree exactly on its columns; a rule's pairs are the sum
of n(n-1)/2 over its blocks, so a block keyed on a common value (first + last name, a swapped
common name) grows with the data and its pairs with the square of it. The cap
(`vars.identity.probabilistic.max_block_size`): a block of **more** records than the cap is
skipped for that rule — its records are not paired by it — which bounds each rule's pairs by
records × (cap - 1) / 2. A pair inside a skipped block is still scored when another rule finds
it (a birth date, a postcode with a name, a street, a phone stem, an email); one that no rule
finds shares only a common value, evidence the model weighs as weak anyway (term-frequency
adjustment). Skipping, not refining by a further column, because every further column is
already a rule of its own: the pairs a refinement (name + postcode) would keep are the pairs the
other rules (last_name + postal_code, first_name + postal_code) find. See docs/identity.md,
*Scratch database and blocking growth*.

How: each rule blocks on a key column of its own in the scratch candidates table
(`_block__first_name__last_name`, `_block_swapped__first_name__last_name`), one integer per block
of at most `cap` records and null for a larger block (null never joins), computed by
`add_keys()` before Splink reads the table. The rule's SQL keeps the plain column equalities
too: Splink reads them to know which comparisons a training session's rule fixes. Grain of the
report (`CapReport`): one row per rule, the keys, records and pairs the cap skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

    from orchestration.identity.config import BlockingRule

_PREFIX = "_block"
_KEY_RE = re.compile(r"_block(_swapped)?__([a-z0-9_]+)")


def key_column(rule: BlockingRule) -> str:
    """The scratch column holding this rule's capped block key."""
    return f"{_PREFIX}{'_swapped' if rule.swapped else ''}__{'__'.join(rule.columns)}"


def splink_rule(rule: BlockingRule) -> str:
    """A configured blocking rule as Splink SQL: exact agreement on its columns (or the two
    columns swapped between the records) within a block the cap kept."""
    key = key_column(rule)
    if rule.swapped:
        a, b = rule.columns
        agree = f"l.{a} = r.{b} and l.{b} = r.{a}"
    else:
        agree = " and ".join(f"l.{c} = r.{c}" for c in rule.columns)
    return f"{agree} and l.{key} = r.{key}"


_TERM = re.compile(r'^\(*\s*l\."?(\w+)"?\s*=\s*r\."?(\w+)"?\s*\)*$')


def prediction_sql(sql: str) -> str:
    """A capped rule's SQL as prediction joins on it: its key alone. The key is one integer per
    distinct value of the rule's columns (null above the cap), so equal keys are equal columns
    in a kept block, and the join compares one integer instead of strings, in the rule and in
    the later rules' exclusion of its pairs. The swapped rule and any other SQL are returned
    unchanged (a swapped key joins the straight pairs of its block too)."""
    columns = []
    for term in re.split(r"\s+and\s+", sql.strip(), flags=re.IGNORECASE):
        m = _TERM.match(term.strip())
        if m is None or m.group(1) != m.group(2):
            return sql
        columns.append(m.group(1))
    keys = [c for c in columns if c.startswith(_PREFIX)]
    plain = [c for c in columns if not c.startswith(_PREFIX)]
    if len(keys) != 1 or not plain or keys[0] != f"{_PREFIX}__{'__'.join(plain)}":
        return sql
    return f'l."{keys[0]}" = r."{keys[0]}"'


def rules_in(text: str) -> list[BlockingRule]:
    """The capped rules whose key columns `text` (a model's JSON, SQL) names, in order."""
    from orchestration.identity.config import BlockingRule

    seen: dict[str, BlockingRule] = {}
    for swapped, cols in _KEY_RE.findall(text):
        rule = BlockingRule(tuple(cols.split("__")), swapped=bool(swapped))
        seen.setdefault(key_column(rule), rule)
    return list(seen.values())


@dataclass(frozen=True)
class RuleCap:
    """What the cap skipped for one rule: blocks (keys), the records in them and the pairs the
    rule would have generated inside them (some still found by another rule)."""

    rule: str
    keys: int
    records: int
    pairs: int
    largest_block: int


@dataclass(frozen=True)
class CapReport:
    """The cap's effect on one scratch table, per rule (rules the cap did not touch included)."""

    max_block_size: int
    rules: tuple[RuleCap, ...] = ()

    @property
    def keys(self) -> int:
        return sum(r.keys for r in self.rules)

    @property
    def pairs(self) -> int:
        return sum(r.pairs for r in self.rules)

    def metadata(self) -> dict[str, Any]:
        """Asset metadata: totals and, per rule that skipped a block, keys/records/pairs."""
        return {
            "max_block_size": self.max_block_size,
            "blocks_skipped": self.keys,
            "pairs_skipped_by_cap": self.pairs,
            "blocks_skipped_by_rule": json.dumps(
                {
                    r.rule: {"keys": r.keys, "records": r.records, "pairs": r.pairs}
                    for r in self.rules
                    if r.keys
                },
                sort_keys=True,
            ),
        }

    def describe(self) -> str:
        skipped = [r for r in self.rules if r.keys]
        if not skipped:
            return f"no block above {self.max_block_size:,} records"
        return "; ".join(
            f"{r.rule}: {r.keys:,} blocks ({r.records:,} records, {r.pairs:,} pairs, largest "
            f"{r.largest_block:,})"
            for r in skipped
        )


_last: CapReport | None = None


def last_report() -> CapReport | None:
    """The report of the last `prepare()` in this process (the probabilistic links asset reads
    it after scoring: the scratch database where it was made is closed by then)."""
    return _last


def add_keys(
    con: duckdb.DuckDBPyConnection, table: str, rules: list[BlockingRule], cap: int
) -> CapReport:
    """Add each rule's key column to `table` (rebuilt once); returns what the cap skipped."""
    columns = {c[0] for c in con.execute(f"describe {table}").fetchall()}
    todo = [r for r in rules if set(r.columns) <= columns and key_column(r) not in columns]
    joins, selects, report = [], [], []
    for i, rule in enumerate(todo):
        cols = list(rule.columns)
        not_null = " and ".join(f"{c} is not null" for c in cols)
        if rule.swapped:
            # a block: the records of (a, b) and of (b, a); pairs across them (a = b: within)
            a, b = cols
            x, y = (f"{f}({table}.{a}, {table}.{b})" for f in ("least", "greatest"))
            con.execute(
                f"""create or replace temp table _cap_{i} as
                with k as (select {a} as a, {b} as b, count(*) as n from {table}
                    where {not_null} group by all)
                select least(a, b) as x, greatest(a, b) as y, sum(n) as size,
                    case when bool_and(a = b) then max(n) * (max(n) - 1) // 2
                        when count(*) = 2 then max(n) * min(n) else 0 end as pairs
                from k group by all"""
            )
            on = f"_cap_{i}.x = {x} and _cap_{i}.y = {y}"
        else:
            x = ", ".join(cols)
            con.execute(
                f"""create or replace temp table _cap_{i} as
                select {x}, count(*) as size, count(*) * (count(*) - 1) // 2 as pairs
                from {table} where {not_null} group by all"""
            )
            on = " and ".join(f"_cap_{i}.{c} = {table}.{c}" for c in cols)
        con.execute(
            f"""create or replace temp table _cap_{i} as
            select *, case when size <= {int(cap)} then row_number() over () end as block_id
            from _cap_{i}"""
        )
        keys, records, pairs, largest = con.execute(
            f"""select count(*), coalesce(sum(size), 0), coalesce(sum(pairs), 0),
                coalesce(max(size), 0) from _cap_{i} where block_id is null and pairs > 0"""
        ).fetchall()[0]
        report.append(RuleCap(rule.label, int(keys), int(records), int(pairs), int(largest)))
        joins.append(f"left join _cap_{i} on {on}")
        selects.append(f"_cap_{i}.block_id as {key_column(rule)}")
    if todo:
        con.execute(
            f"create or replace table {table} as select {table}.*, {', '.join(selects)} "
            f"from {table} {' '.join(joins)}"
        )
        for i in range(len(todo)):
            con.execute(f"drop table _cap_{i}")
    return CapReport(int(cap), tuple(report))


def _model_text(model: Any) -> str:
    if isinstance(model, Path):
        return model.read_text()
    if isinstance(model, dict):
        return json.dumps(model)
    rules = getattr(model, "blocking_rules_to_generate_predictions", None)
    return json.dumps(rules, default=str) if rules is not None else str(model)


def prepare(con: duckdb.DuckDBPyConnection, table: str, model: Any) -> CapReport:
    """Key columns for every capped rule a linker over `table` may use: the model's prediction
    rules (a trained model's JSON, a settings creator) and the configured training and
    deterministic rules; the cap from `vars.identity.probabilistic.max_block_size`."""
    global _last
    from orchestration.identity import config as identity_config

    settings = identity_config.load().probabilistic
    defaults = identity_config.Probabilistic()
    rules = rules_in(_model_text(model))
    for rule in (
        *settings.training_blocking,
        *settings.deterministic_rules,
        *defaults.training_blocking,
        *defaults.deterministic_rules,
    ):
        if all(key_column(rule) != key_column(r) for r in rules):
            rules.append(rule)
    _last = add_keys(con, table, rules, settings.max_block_size)
    return _last
