"""Probabilistic identity matching: record pairs without a shared deterministic key, scored by
a Splink (Fellegi-Sunter) model on DuckDB.

Grain of the output, `identity.probabilistic_links`: one row per pair of source records (CRM
contact, loyalty member, shop customer) whose match probability is at least
`vars.identity.probabilistic.threshold` and that share no email or phone value (pairs that do are
the deterministic rules' to link or refuse). dbt reads the table as a source: `int_identity__edges`
unions the pairs in as record-to-record links typed `probabilistic` (the lowest priority), so
connected components, max_per_customer limits, persistent ids, the merge log and the circuit
breaker treat them like any other link.

The model is fixed: `probabilistic_model.json` beside this module holds the comparisons, the
blocking rules and the trained m and u probabilities, so a run only predicts and two runs on the
same records give the same links. `train()` (python -m orchestration.identity.probabilistic train)
rebuilds it from a resolved warehouse: u by random sampling (seeded), m from the pairs the
deterministic rules linked (estimate_m_from_pairwise_labels: names, birth date and address from
pairs linked through an email, a phone or a lookup; email and phone from pairs linked by name and
address), the prior from the pairs sharing an email or phone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from orchestration.engine import Connection, dialect_of, replace_table, store_table
from orchestration.identity import (
    blocking,
    edit_guard,
    fold,
    given_names,
    probabilistic_inputs,
    scoring_state,
    term_frequencies,
)
from orchestration.identity.fold import sql_table
from orchestration.warehouse import connect as connect_warehouse
from orchestration.warehouse import scratch as scratch_database

if TYPE_CHECKING:
    from orchestration.identity.config import BlockingRule, Comparison, Probabilistic

TABLE = "identity.probabilistic_links"
MODEL_PATH = Path(__file__).with_name("probabilistic_model.json")
RULE = "probabilistic"


def fold_sql(expr: str) -> str:
    """SQL folding `expr` like orchestration/identity/fold.py fold() (and the dbt macro fold_key):
    accents, ligatures, full-width forms and ß/Ø/Ł/Æ/Œ/Þ to lower-case ASCII, then everything
    but letters and digits removed, '' as null ('Müller' = 'MULLER', 'Straße' = 'strasse')."""
    source, target, multi = sql_table()
    folding = expr
    for folded, chars in multi.items():
        folding = f"regexp_replace({folding}, '[{chars}]', '{folded}', 'g')"
    # ASCII has nothing to translate (most values): skip the costly translate(); bytes equal
    # to characters is ASCII, a length comparison rather than a regex pass (fold_key's test)
    return (
        f"nullif(lower(case when strlen({expr}) = length({expr}) "
        f"then regexp_replace({expr}, '[^A-Za-z0-9]', '', 'g') "
        f"else regexp_replace(translate({folding}, '{source}', '{target}'), "
        "'[^A-Za-z0-9]', '', 'g') end), '')"
    )


# One row per non-web source record with the columns the model compares. Names and address parts
# are folded like the deterministic name_address key (fold.py: 'Müller' = 'Muller', 'Straße' =
# 'Strasse', '12 OAK AVE.' = '12 Oak Ave'); the street line is also split into its house number
# and the street without digits, so a typo in one is not a different street. Email and phone
# values the deterministic rules refused as junk (blocklist, shared by too many records) are no
# evidence here either. A value refused as a household's (first_name_conflict) stays: the name
# comparison weighs it. The date of birth is compared as its ISO text (one edit, day and month
# swapped). Web anonymous ids carry no attribute to compare.
CANDIDATES_SQL = f"""
with records as (
    select * from intermediate.int_identity__records where source <> 'web'
),

junk as (
    select record_key, node_key from intermediate.int_identity__dropped_links
    where drop_reason <> 'first_name_conflict'
),

compared as (
    select
        records.record_key as unique_id,
        regexp_replace({fold_sql("records.first_name")}, '[0-9]', '', 'g') as first_name,
        regexp_replace({fold_sql("records.last_name")}, '[0-9]', '', 'g') as last_name,
        case when junk_email.record_key is null then records.email_normalized end as email,
        case when junk_phone.record_key is null then records.phone_e164 end as phone,
        strftime(records.date_of_birth, '%Y-%m-%d') as date_of_birth,
        {fold_sql("records.postal_code")} as postal_code,
        -- the whole street line, as in the name_address key (the shipped fixed model's)
        {fold_sql("records.address_line1")} as address_line1,
        nullif(regexp_extract(records.address_line1, '[0-9]+'), '') as street_number,
        nullif(regexp_replace({fold_sql("records.address_line1")}, '[0-9]', '', 'g'), '')
            as street,
        {fold_sql("records.city")} as city,
        -- not compared: a pair sharing one is the deterministic rules' call, like email and
        -- phone (a shop account has a key per address its orders were shipped to)
        name_address.name_addresses
    from records
    left join junk as junk_email
        on junk_email.record_key = records.record_key
        and junk_email.node_key = 'v|email:' || records.email_normalized
    left join junk as junk_phone
        on junk_phone.record_key = records.record_key
        and junk_phone.node_key = 'v|phone:' || records.phone_e164
    left join (
        select record_key, list(identifier_value order by identifier_value) as name_addresses
        from intermediate.int_identity__candidate_links
        where identifier_type = 'name_address'
        group by record_key
    ) as name_address
        on name_address.record_key = records.record_key
)

select
    * replace (nullif(first_name, '') as first_name, nullif(last_name, '') as last_name),
    -- blocking keys: a phone typo changes one of the last two digits, an email typo one of the
    -- local part's second and third characters (the demo generator's noise, and common typing)
    left(phone, length(phone) - 2) as phone_stem,
    nullif(split_part(email, '@', 2), '') as email_domain,
    nullif(substr(split_part(email, '@', 1), 4), '') as email_tail
from compared
order by unique_id
"""

# Labelled pairs for estimating m: record pairs the deterministic rules linked, by the link types
# kept. Labels are selected by what they share, so each set trains only the comparisons it is
# not selected on: pairs linked through an email, a phone or a lookup train names, birth date and
# address; pairs linked by name and address alone train email and phone (how often one person's
# records carry different contact details: the shop account with a work email).
LABELS_SQL = """
with edges as (
    select * from intermediate.int_identity__edges
    where identifier_type {types}
),

pairs as (
    select left_side.record_key as unique_id_l, right_side.record_key as unique_id_r
    from edges as left_side
    inner join edges as right_side
        on left_side.node_key = right_side.node_key and left_side.record_key < right_side.record_key
    where left_side.node_key like 'v|%'
    union
    select least(record_key, node_key), greatest(record_key, node_key)
    from edges
    where node_key like 'r|%'
)

select distinct unique_id_l, unique_id_r
from pairs
where unique_id_l not like 'r|web:%' and unique_id_r not like 'r|web:%'
order by unique_id_l, unique_id_r
"""
CONTACT_LABELS = "not in ('probabilistic', 'name_address')"
ADDRESS_LABELS = "= 'name_address'"
# the comparisons whose m comes from the name-and-address labels
TRAINED_ON_ADDRESS_LABELS = ("email", "phone")

# m of a comparison level no labelled pair reached when training (see train()).
UNSEEN_LEVEL_M = 0.001


@dataclass(frozen=True)
class LinkCounts:
    """What one refresh did: records compared, pairs linked, seconds taken (read to write)."""

    records: int
    links: int
    seconds: float
    refused_by_cluster_check: int = 0
    refused_by_household_guard: int = 0
    # the last night's pairs kept: nothing the scoring reads had changed (probabilistic_inputs)
    reused: bool = False
    # records Splink compared tonight (all, or only the new and changed: scoring_state.py) and
    # the pairs whose scores were kept from the last scoring
    rescored_records: int | None = None
    kept_pairs: int = 0

    def metadata(self) -> dict[str, Any]:
        """Every count as it is, seconds rounded to 0.01 (asset metadata)."""
        return {**asdict(self), "seconds": round(self.seconds, 2)}


def _name_comparison(column: str):  # -> splink comparison
    """Exact / one letter changed / Jaro-Winkler >= 0.9 / else. A one-letter typo in a short
    name ('Eva' → 'Exa') scores below 0.9 Jaro-Winkler, so it gets a level of its own."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(
        output_column_name=column,
        comparison_levels=[
            cll.NullLevel(column),
            cll.ExactMatchLevel(column),
            cll.DamerauLevenshteinLevel(column, 1),
            cll.JaroWinklerLevel(column, 0.9),
            cll.ElseLevel(),
        ],
    )


def _levels(
    c: Comparison, swap_counted_elsewhere: bool = False, crosswise_nicknames: bool = False
) -> list:
    """The comparison levels of one configured comparison (strongest first; a null is neutral).

    name: exact / given and family name swapped / one letter changed (Damerau-Levenshtein 1: a
    typo in a short name scores below 0.9 Jaro-Winkler) / Jaro-Winkler >= 0.92 / >= 0.8 / else.
    date (ISO text): exact / day and month swapped / one edit (a digit typed wrong or two adjacent
    digits swapped) / two edits / else. exact: exact / else. string: exact / Jaro-Winkler >= 0.9 / else.
    postcode: exact / one edit / else. contact (email, phone): exact / one edit / else.
    address (street_number, street, city, postal_code): the same address / the same street and
    postcode, another number / the same number and street, a postcode one edit off / the same
    number and postcode, the street written alike (Jaro-Winkler >= 0.9) / the same postcode /
    the same locality / else; null when postcode and street are both missing.

    A name's exact level is adjusted for the value's frequency (Splink's term-frequency
    adjustment): two records agreeing on a surname one record in ten thousand carries are far
    stronger evidence than two agreeing on the commonest one, and an average weight for both
    under-links the first and over-links the second. A swap of given and family name is one
    fact seen by both name comparisons: it is weighed once, in the comparison listed first; in
    the other (`swap_counted_elsewhere`) the swapped level is neutral (weight 0), else the swap
    would count twice and two strangers of swapped common names would outweigh everything.

    A name comparison with `nicknames` has a nickname level after the swapped ones: the two
    names are nicknames of one another (given_names.py: William and Bill, Elizabeth and Beth),
    and `crosswise_nicknames` (a comparison of the swapped pair has nicknames) lets the swapped,
    written-alike level take a nickname crosswise too (Dorothy Smith and Smith Dottie)."""
    import splink.comparison_level_library as cll

    col = c.column
    if c.kind == "address":
        number, street = cll.ExactMatchLevel("street_number"), cll.ExactMatchLevel("street")
        postcode = cll.ExactMatchLevel("postal_code")
        return [
            cll.And(cll.NullLevel("postal_code"), cll.NullLevel("street")),
            cll.And(number, street, postcode),
            cll.And(street, postcode),
            cll.And(number, street, cll.DamerauLevenshteinLevel("postal_code", 1)),
            cll.And(number, postcode, cll.JaroWinklerLevel("street", 0.9)),
            postcode,
            cll.ExactMatchLevel("city"),
            cll.ElseLevel(),
        ]
    levels = [
        cll.NullLevel(col),
        cll.ExactMatchLevel(col, term_frequency_adjustments=c.kind == "name"),
    ]
    if c.kind == "name":
        if c.swapped_with:
            other = c.swapped_with
            swapped = cll.ColumnsReversedLevel(col, other, symmetrical=True)

            # swapped and one of the two mistyped: a swap and a typo are independent events
            # crosswise as the straight levels judge a typo: one letter changed (a short
            # name's or an early letter's typo scores below 0.92 Jaro-Winkler) or alike
            def alike(a: str, b: str) -> str:
                close = (
                    f"(damerau_levenshtein({a}_l, {b}_r) <= 1 "
                    f"or jaro_winkler_similarity({a}_l, {b}_r) >= 0.92)"
                )
                if not crosswise_nicknames:
                    return close
                return f"({close} or list_has_any({a}_nicknames_l, {b}_nicknames_r))"

            swapped_alike = cll.CustomLevel(
                f"{alike(col, other)} and {alike(other, col)}",
                label_for_charts=f"{col} and {other} swapped, written alike",
            )
            if swap_counted_elsewhere:
                swapped = swapped.configure(
                    is_null_level=True, label_for_charts=f"swapped (weighed in {other})"
                )
                swapped_alike = swapped_alike.configure(
                    is_null_level=True,
                    label_for_charts=f"swapped, written alike (weighed in {other})",
                )
            levels += [swapped, swapped_alike]
        if c.nicknames:
            levels.append(
                cll.CustomLevel(
                    f"list_has_any({col}_nicknames_l, {col}_nicknames_r)",
                    label_for_charts=f"{col} a nickname of the other",
                )
            )
        levels += [
            cll.DamerauLevenshteinLevel(col, 1),
            cll.JaroWinklerLevel(col, 0.92),
            cll.JaroWinklerLevel(col, 0.8),
        ]
    elif c.kind == "date":
        levels += [
            cll.CustomLevel(
                f"substr({col}_l, 1, 4) = substr({col}_r, 1, 4) "
                f"and substr({col}_l, 6, 2) = substr({col}_r, 9, 2) "
                f"and substr({col}_l, 9, 2) = substr({col}_r, 6, 2)",
                label_for_charts="day and month swapped",
            ),
            cll.DamerauLevenshteinLevel(col, 1),
            # two typos: within one source, two copies each a typo from the truth are two
            # typos from each other; a stranger's date is many digits away
            cll.DamerauLevenshteinLevel(col, 2),
        ]
    elif c.kind == "string":
        levels.append(cll.JaroWinklerLevel(col, 0.9))
    elif c.kind in ("postcode", "contact"):
        levels.append(cll.DamerauLevenshteinLevel(col, 1))
    return [*levels, cll.ElseLevel()]


def blocking_rule(rule: BlockingRule):  # -> splink blocking rule
    """A configured blocking rule as Splink's: exact agreement on its columns, or two columns
    swapped between the records, within a block the size cap kept (blocking.py)."""
    return blocking.splink_rule(rule)


def configured_settings(config: Probabilistic, present: Iterable[str] | None = None):
    """The untrained model the config describes (comparisons and prediction blocking rules),
    keeping only comparisons and rules whose columns are in `present` (None: all): email and
    phone are compared where the data has them."""
    import splink.comparison_library as cl
    from splink import SettingsCreator

    have = set(present) if present is not None else None

    def usable(columns: Iterable[str]) -> bool:
        return have is None or all(_base_column(c) in have for c in columns)

    kept = [c for c in config.comparisons if usable(_compared_columns(c))]
    # a swap between two compared names is weighed in the one listed first (see _levels)
    weighed_in: set[str] = set()
    for i, c in enumerate(kept):
        if any(o.column == c.swapped_with and o.swapped_with == c.column for o in kept[:i]):
            weighed_in.add(c.column)
    # a swap written with a nickname crosswise, when either comparison of the pair has them
    nicknamed = {c.column for c in kept if c.nicknames}
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            blocking_rule(r) for r in config.blocking if usable(r.columns)
        ],
        comparisons=[
            cl.CustomComparison(
                output_column_name=c.column,
                comparison_levels=_levels(
                    c, c.column in weighed_in, bool(nicknamed & {c.column, c.swapped_with})
                ),
            )
            for c in kept
        ],
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
    )


def _compared_columns(c: Comparison) -> list[str]:
    """The record columns a comparison reads (an address needs its postcode and street)."""
    if c.kind == "address":
        return ["postal_code", "street"]
    return [c.column] + ([c.swapped_with] if c.swapped_with else [])


def _base_column(column: str) -> str:
    """The record column a blocking key derives from (phone_stem → phone)."""
    return {"phone_stem": "phone", "email_domain": "email", "email_tail": "email"}.get(
        column, column
    )


def settings():  # -> splink.SettingsCreator (imported lazily: the code location stays light)
    """The shipped fixed model's comparisons and blocking rules (untrained)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "last_name"),
            block_on("last_name", "date_of_birth"),
            block_on("first_name", "date_of_birth"),
            block_on("last_name", "postal_code"),
            block_on("phone_stem"),
            block_on("email_domain", "email_tail"),
        ],
        comparisons=[
            _name_comparison("first_name"),
            _name_comparison("last_name"),
            cl.LevenshteinAtThresholds("email", [1]),
            cl.LevenshteinAtThresholds("phone", [1]),
            cl.ExactMatch("date_of_birth"),
            cl.CustomComparison(
                output_column_name="address",
                comparison_levels=[
                    cll.Or(cll.NullLevel("postal_code"), cll.NullLevel("address_line1")),
                    cll.And(
                        cll.ExactMatchLevel("postal_code"), cll.ExactMatchLevel("address_line1")
                    ),
                    cll.ExactMatchLevel("postal_code"),
                    cll.ElseLevel(),
                ],
            ),
        ],
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
    )


def _linker(candidates: pa.Table, model: Any, signed: bool = False, previous: Path | None = None):
    """A Splink linker over `candidates` (a settings creator, a model dict or a JSON path) and
    the scratch connection it works in (the caller closes it). `signed`: each record's
    signature and whether it changed since the `previous` night's scores (scoring_state.py)."""
    from splink import DuckDBAPI, Linker

    # Splink's scratch tables live in a private in-memory DuckDB, never in the warehouse file.
    scratch = scratch_database()
    scratch.register("candidates_arrow", candidates)
    scratch.register("given_name_groups", given_names.table())
    names = {"first_name", "last_name"} <= set(candidates.column_names)
    # each name's nickname groups (given_names.py), for the name comparisons' nickname level
    scratch.execute(
        "create table candidates as select c.* exclude (_row)"
        + (
            ", f.groups as first_name_nicknames, s.groups as last_name_nicknames "
            "from (select *, row_number() over () as _row from candidates_arrow) as c "
            "left join given_name_groups as f on f.name = c.first_name "
            "left join given_name_groups as s on s.name = c.last_name "
            "order by c._row"  # the input's order: sampling for u is seeded on it
            if names
            else " from (select *, 0 as _row from candidates_arrow) as c"
        )
    )
    scratch.unregister("candidates_arrow")
    scratch.unregister("given_name_groups")
    blocking.prepare(scratch, "candidates", model)  # the capped rules' block keys
    if signed:
        scoring_state.sign(scratch, "candidates", previous)
    db_api = DuckDBAPI(scratch)
    # the same levels, each one-edit test behind a cheap necessary check (edit_guard.py)
    settings = edit_guard.guard_settings(_model_dict(model))
    # a trained model's own name frequencies (term_frequencies.py), not tonight's records'
    frozen = settings.pop(term_frequencies.KEY, None)
    linker = Linker(db_api.register("candidates"), settings, log_level=logging.WARNING)
    if frozen:
        term_frequencies.register(linker, scratch, "candidates", frozen)
    return linker, scratch


# What CANDIDATES_SQL reads, as another engine holds it: copied as they are into a scratch
# DuckDB, where the same SQL folds and keys them (one folding for every engine)
_CANDIDATE_INPUTS = {
    "int_identity__records": (
        "select * from intermediate.int_identity__records where source <> 'web'"
    ),
    "int_identity__dropped_links": (
        "select record_key, node_key, drop_reason from intermediate.int_identity__dropped_links"
    ),
    "int_identity__candidate_links": (
        "select record_key, identifier_type, identifier_value "
        "from intermediate.int_identity__candidate_links where identifier_type = 'name_address'"
    ),
}


def candidates(con: Connection) -> pa.Table:
    """The records the model compares, read from the warehouse (grain: one non-web record)."""
    if dialect_of(con) == "duckdb":
        return con.sql(CANDIDATES_SQL).to_arrow_table()  # type: ignore[attr-defined]
    local = scratch_database()
    try:
        local.execute("create schema intermediate")
        for name, sql in _CANDIDATE_INPUTS.items():
            local.register("_candidate_input", con.execute(sql).to_arrow_table())
            local.execute(f"create table intermediate.{name} as select * from _candidate_input")
            local.unregister("_candidate_input")
        return local.sql(CANDIDATES_SQL).to_arrow_table()
    finally:
        local.close()


def _no_links() -> pa.Table:
    return pa.table(
        {
            "record_key": pa.array([], pa.string()),
            "node_key": pa.array([], pa.string()),
            "match_probability": pa.array([], pa.float64()),
            "match_weight": pa.array([], pa.float64()),
            "comparison_levels": pa.array([], pa.string()),
        }
    )


def _numbered_levels(comparison: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """A comparison's levels in order with Splink's comparison-vector value (gamma): a null
    level -1, the others numbered from the strongest (k-1) down to the else level (0)."""
    levels = comparison["comparison_levels"]
    value = sum(1 for lv in levels if not lv.get("is_null_level"))
    numbered = []
    for level in levels:
        if level.get("is_null_level"):
            numbered.append((-1, level))
        else:
            value -= 1
            numbered.append((value, level))
    return numbered


def _gamma_labels(model: dict[str, Any]) -> dict[str, dict[int, str]]:
    """Per comparison: its comparison-vector value (_numbered_levels) → the level's label."""
    out: dict[str, dict[int, str]] = {}
    for comparison in model["comparisons"]:
        labels = {-1: "null or neutral (no evidence)"}
        for value, level in _numbered_levels(comparison):
            if value >= 0:
                labels[value] = level.get("label_for_charts") or level["sql_condition"]
        out[comparison["output_column_name"]] = labels
    return out


def _gamma_sql(comparison: dict[str, Any]) -> str:
    """A comparison's vector value as Splink computes it (_numbered_levels), as SQL over
    `<column>_l` and `<column>_r`."""
    whens, otherwise = [], None
    for value, level in _numbered_levels(comparison):
        if level["sql_condition"].strip().upper() == "ELSE":
            otherwise = value
        else:
            whens.append(f"when {level['sql_condition']} then {value}")
    tail = f" else {otherwise}" if otherwise is not None else ""
    return f"case {' '.join(whens)}{tail} end"


def _model_dict(model: Any) -> dict[str, Any]:
    if isinstance(model, Path | str):
        return json.loads(Path(model).read_text())
    if isinstance(model, dict):
        return json.loads(json.dumps(model))
    return model.get_settings("duckdb").as_dict()


def cluster_check(
    accepted: list[tuple[str, str, float]],
    scored: dict[tuple[str, str], float],
    households: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> tuple[set[tuple[str, str]], int]:
    """Links of `accepted` (record_key, node_key, p) kept by the cluster-level check, and how
    many it refused.

    Links are added strongest first. A link inside one group is kept; a link between two groups
    merges them only when the model, over every pair of records across the two groups it
    scored (`scored`: (smaller key, larger key) → p, the link itself included), expects at
    least half to be one person (mean p >= CLUSTER_MIN_MEAN). So A–B and B–C strong with A–C
    scored as two people is not A = B = C: single-link clustering would chain it through B
    (three namesakes at one address, a parent and child each a typo away from a third record),
    the check keeps the weaker link out. Pairs the blocking rules never scored are no evidence
    either way.

    `households` (pairs, smaller key first) are the pairs the household guard calls two people
    (HOUSEHOLD_CONFLICT: a parent and a child of one name, two family members): a merge that
    would put such a pair in one group is refused whatever the mean, since the guard refuses
    that pair as a direct link and a chain through a third record (Bill Thorson with no birth
    date, between William Thorson 1941 and William Thorson 1994) must not do what the link may
    not."""
    parent: dict[str, str] = {}
    members: dict[str, list[str]] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    kept: set[tuple[str, str]] = set()
    refused = 0
    for a, b, _p in sorted(accepted, key=lambda t: (-t[2], t[0], t[1])):
        ra, rb = find(a), find(b)
        if ra == rb:
            kept.add((a, b))
            continue
        left, right = members.get(ra, [ra]), members.get(rb, [rb])
        cross = [
            scored[(x, y) if x < y else (y, x)]
            for x in left
            for y in right
            if ((x, y) if x < y else (y, x)) in scored
        ]
        if (cross and sum(cross) / len(cross) < CLUSTER_MIN_MEAN) or (
            households
            and any(((x, y) if x < y else (y, x)) in households for x in left for y in right)
        ):
            refused += 1
            continue
        kept.add((a, b))
        if len(left) < len(right):
            ra, rb, left, right = rb, ra, right, left
        parent[rb] = ra
        members[ra] = left + right
        members.pop(rb, None)
    return kept, refused


# The cluster-level check's bound: merge two groups only when the model expects at least half of
# the pairs it scored across them to be one person (more likely the same than not: the same
# bound as the threshold's floor, training.FLOOR).
CLUSTER_MIN_MEAN = 0.5


def scoring_settings(model: Any, weights: bool = False) -> dict[str, Any]:
    """A copy of the model's settings for scoring: each capped rule joining on its block key
    alone (blocking.prediction_sql) and no record values copied into Splink's output (Splink
    copying both sides of every scored pair cost more than scoring some comparisons; a caller
    that needs the values joins the candidates); `weights` keeps each comparison's match
    weight and term-frequency adjustment columns."""
    settings = _model_dict(model)
    for rule in settings.get("blocking_rules_to_generate_predictions", []):
        if isinstance(rule, dict) and isinstance(rule.get("blocking_rule"), str):
            rule["blocking_rule"] = blocking.prediction_sql(rule["blocking_rule"])
    settings["retain_matching_columns"] = False
    settings["retain_intermediate_calculation_columns"] = weights
    return settings


def _judged(scored: str, kept_columns: str, threshold: float, where: str) -> str:
    """SQL: the scored pairs `where` holds (a condition on Splink's scored table), one row per
    pair (record_key < node_key) with the scores kept and the guards' verdicts: linked (at
    the threshold, sharing no value, no household conflict), household_conflict, two_people."""
    return f"""
        with joined as (
            select
                least(scored.unique_id_l, scored.unique_id_r) as record_key,
                greatest(scored.unique_id_l, scored.unique_id_r) as node_key,
                {kept_columns},
                -- a shared value is the deterministic rules' call (linked, or refused on
                -- purpose by a guard: two birth dates at one name and address are two people)
                coalesce(l.email = r.email, false)
                    or coalesce(l.phone = r.phone, false)
                    or coalesce(
                        len(list_intersect(l.name_addresses, r.name_addresses)) > 0, false
                    ) as shares_a_value,
                -- the household guard, evaluated once per pair
                coalesce({HOUSEHOLD_CONFLICT}, false) as household,
                abs(
                    cast(left(l.date_of_birth, 4) as integer)
                    - cast(left(r.date_of_birth, 4) as integer)
                ) as birth_years_apart
            from (select * from {scored} where {where}) as scored
            inner join candidates as l on l.unique_id = scored.unique_id_l
            inner join candidates as r on r.unique_id = scored.unique_id_r
        )
        select
            * exclude (shares_a_value, household, birth_years_apart),
            match_probability >= {threshold!r} and not shares_a_value
                and not household as linked,
            household and match_probability >= {threshold!r} as household_conflict,
            -- the cluster check's two people: the guard's verdict with both birth dates known
            -- and a generation apart (a parent and a child); two copies of one person, each a
            -- typo off, can differ by more than the guard allows, and a missing date next to
            -- a mistyped given name is one record's gap
            household and coalesce(birth_years_apart >= {GENERATION_YEARS}, false)
                as two_people
        from joined
    """


@dataclass(frozen=True)
class Scoring:
    """What one scoring did: the links (predict's table), the candidate records Splink compared
    tonight (all, or the new and changed ones) and the pairs kept from the last night."""

    links: pa.Table
    rescored_records: int
    kept_pairs: int


def predict(candidate_records: pa.Table, threshold: float, model: Any = MODEL_PATH) -> pa.Table:
    """Pairs (record_key < node_key) at or above `threshold` sharing no email or phone and kept
    by the cluster-level check (cluster_check), ordered.

    Grain: one row per record pair; columns record_key, node_key, match_probability,
    match_weight, comparison_levels (JSON: per comparison its level and match weight, the
    term-frequency adjustment included, and the prior's weight). The table's metadata
    `refused_by_cluster_check` counts the links the check refused."""
    return score(candidate_records, threshold, model).links


def score(
    candidate_records: pa.Table,
    threshold: float,
    model: Any = MODEL_PATH,
    state: Path | None = None,
    key: str = "",
) -> Scoring:
    """predict(), keeping what was scored in the `state` file (scoring_state.py) under the
    scoring inputs' `key`: when the file holds a night scored with the same key, only the pairs
    with a new or changed record are scored and the others' scores are taken from it (the same
    links as scoring every pair: a pair's score and blocking depend on its two records only)."""
    if candidate_records.num_rows < 2:
        return Scoring(_no_links(), 0, 0)
    settings = scoring_settings(model, weights=True)
    # pairs are kept only when a pair's score depends on its two records alone: the names'
    # frequencies must be the model's (a model trained before they were kept, or the fixed
    # model, lets Splink count tonight's records: every exact-name pair's weight moves)
    frozen = term_frequencies.KEY in settings or not term_frequencies.columns(settings)
    previous = state if state is not None and frozen and scoring_state.usable(state, key) else None
    labels = _gamma_labels(settings)
    if previous is not None:
        for rule in settings.get("blocking_rules_to_generate_predictions", []):
            if isinstance(rule, dict) and isinstance(rule.get("blocking_rule"), str):
                rule["blocking_rule"] = scoring_state.changed_only(rule["blocking_rule"])
            else:  # a rule this code cannot restrict: score every pair
                previous = None
                settings = scoring_settings(model, weights=True)
                break
    linker, scratch = _linker(candidate_records, settings, signed=state is not None,
                              previous=previous)  # fmt: skip
    try:
        splink_scored = linker.inference.predict(threshold_match_probability=CHECK_FROM)
        # only the columns read below: the scored table holds every intermediate column, and
        # copying them all cost more than the scoring's own joins
        names = [
            c
            for (c,) in scratch.execute(
                f"select column_name from (describe {splink_scored.physical_name})"
            ).fetchall()
            if c in ("match_probability", "match_weight") or c.startswith("mw_")
        ]
        pair_columns = ", ".join(f'"{c}"' for c in ["unique_id_l", "unique_id_r", *names])
        rescored = candidate_records.num_rows
        kept_pairs = 0
        if previous is not None:
            rescored = scratch.execute(
                f"select count(*) from candidates where {scoring_state.CHANGED}"
            ).fetchone()[0]
            scratch.execute(
                f"create table scored_pairs as select {pair_columns} "
                f"from {splink_scored.physical_name} union all "
                + scoring_state.kept_pairs_sql(pair_columns)
            )
            kept_pairs = (
                scratch.execute("select count(*) from scored_pairs").fetchone()[0]
                - scratch.execute(f"select count(*) from {splink_scored.physical_name}").fetchone()[
                    0
                ]
            )
        else:
            scratch.execute(
                f"create view scored_pairs as select {pair_columns} "
                f"from {splink_scored.physical_name}"
            )
        scored_name = "scored_pairs"
        kept_columns = ", ".join(f'scored."{c}"' for c in names)
        thr = float(threshold)
        # judged only where read: the pairs at the threshold (links, household conflicts)
        # and the pairs among linked records (the cluster check's evidence), not every pair
        # scored above CHECK_FROM
        scratch.execute(
            "create table pairs as "
            + _judged(scored_name, kept_columns, thr, f"match_probability >= {thr!r}")
        )
        household = scratch.execute(
            "select count(*) from pairs where household_conflict"
        ).fetchall()[0][0]
        accepted = scratch.execute(
            "select record_key, node_key, match_probability from pairs where linked"
        ).fetchall()
        scratch.execute(
            "create table linked_records as select record_key as k from pairs where linked "
            "union select node_key from pairs where linked"
        )
        # every scored pair among the records of accepted links (the check's evidence); pairs
        # below CHECK_FROM are not read, so the check weighs them as pairs never blocked
        near = scratch.execute(
            "select record_key, node_key, match_probability, two_people from ("
            + _judged(
                scored_name,
                kept_columns,
                thr,
                "unique_id_l in (select k from linked_records) "
                "and unique_id_r in (select k from linked_records)",
            )
            + ")"
        ).fetchall()
        kept, refused = cluster_check(
            accepted,
            {(a, b): p for a, b, p, _ in near},
            {(a, b) for a, b, _, two in near if two},
        )
        columns = [c[0] for c in scratch.execute("describe pairs").fetchall()]
        compared = [c for c in labels if f"mw_{c}" in columns]
        # each linked pair's levels, from the conditions Splink scored with: Splink copying
        # them (and the values they read) out for every scored pair cost more than most of
        # its comparisons. A dedupe pair's left record is its smaller key, as record_key is.
        sides = ", ".join(
            f'{side}."{c}" as "{c}_{side}"'
            for (c,) in scratch.execute("select column_name from (describe candidates)").fetchall()
            for side in ("l", "r")
        )
        conditions = {
            c["output_column_name"]: _gamma_sql(c)
            for c in edit_guard.guard_settings(_model_dict(settings))["comparisons"]
        }
        rows = scratch.execute(
            "select record_key, node_key, match_probability, match_weight, "
            + ", ".join(
                f"{conditions[c]} as gamma_{c}, mw_{c}, "
                + (f"mw_tf_adj_{c}" if f"mw_tf_adj_{c}" in columns else "0.0")
                for c in compared
            )
            + f""" from (
                select pairs.*, {sides} from pairs
                inner join candidates as l on l.unique_id = pairs.record_key
                inner join candidates as r on r.unique_id = pairs.node_key
                where pairs.linked
            ) order by record_key, node_key"""
        ).fetchall()
        if state is not None:
            scoring_state.save(scratch, scored_name, state, key)
    finally:
        scratch.close()
    prior = settings["probability_two_random_records_match"]
    prior_weight = round(math.log2(prior / (1 - prior)), 3)
    out: dict[str, list] = {k: [] for k in ("record_key", "node_key", "match_probability",
                                            "match_weight", "comparison_levels")}  # fmt: skip
    for row in rows:
        if (row[0], row[1]) not in kept:
            continue
        evidence = [{"comparison": "prior", "level": f"p={prior:.3g}", "weight": prior_weight}]
        for i, c in enumerate(compared):
            gamma, weight, tf = row[4 + 3 * i : 7 + 3 * i]
            weight = (weight or 0.0) + (tf or 0.0)
            evidence.append(
                {"comparison": c, "level": labels[c].get(int(gamma), str(gamma)),
                 "weight": round(weight, 3)}
            )  # fmt: skip
        for key, value in zip(out, (*row[:4], json.dumps(evidence)), strict=True):
            out[key].append(value)
    table = pa.table(
        {
            "record_key": pa.array(out["record_key"], pa.string()),
            "node_key": pa.array(out["node_key"], pa.string()),
            "match_probability": pa.array(out["match_probability"], pa.float64()),
            "match_weight": pa.array(out["match_weight"], pa.float64()),
            "comparison_levels": pa.array(out["comparison_levels"], pa.string()),
        }
    )
    return Scoring(
        table.replace_schema_metadata(
            {"refused_by_cluster_check": str(refused), "refused_by_household_guard": str(household)}
        ),
        int(rescored),
        int(kept_pairs),
    )


# The household guard of probabilistic links (the twin of the deterministic birth_date_conflict
# and first_name_conflict guards): two records of one surname at one address (same street, and
# postcode or locality) are a household's, not one person's, when their birth dates are both
# known and not one typo (or a day-month swap) apart — a parent and a child of one name; two
# typos when the given names agree (one typo or nicknames): spouses and siblings have other
# given names, and the only relatives of one given name, a parent and a child, are a generation
# apart, which two typos reach only when day and month agree too — or
# when a birth date is missing and their given names disagree outright (not one typo, not alike,
# not nicknames of one name: William and Bill are one name) — two family members. Fellegi-Sunter multiplies the surname and the address as independent
# evidence, but family members share both, so such a pair scores as high as one person's two
# records; it is refused whatever its probability. Agreeing birth dates with different given
# names (William and Bill, born the same day at one address) stay the model's to weigh.
HOUSEHOLD_CONFLICT = """
    l.last_name = r.last_name
    and l.street = r.street
    and (l.postal_code = r.postal_code or l.city = r.city)
    and (
        coalesce(
            damerau_levenshtein(l.date_of_birth, r.date_of_birth) > case
                when damerau_levenshtein(l.first_name, r.first_name) <= 1
                    or list_has_any(l.first_name_nicknames, r.first_name_nicknames)
                then 2 else 1
            end
            and not (
                substr(l.date_of_birth, 1, 4) = substr(r.date_of_birth, 1, 4)
                and substr(l.date_of_birth, 6, 2) = substr(r.date_of_birth, 9, 2)
                and substr(l.date_of_birth, 9, 2) = substr(r.date_of_birth, 6, 2)
            ),
            false
        )
        or (
            (l.date_of_birth is null or r.date_of_birth is null)
            and coalesce(
                jaro_winkler_similarity(l.first_name, r.first_name) < 0.8
                and damerau_levenshtein(l.first_name, r.first_name) > 1
                and not coalesce(list_has_any(l.first_name_nicknames, r.first_name_nicknames), false),
                false
            )
        )
    )
"""

# Years between two birth dates that make two records a parent's and a child's for the cluster
# check (a generation: no parent is younger than this at a child's birth, as a rule).
GENERATION_YEARS = 12

# Pairs scored below this are not read back for the cluster check (no evidence either way, as
# a pair no rule blocked).
CHECK_FROM = 0.001


def refresh(
    con: Connection,
    as_of: str,
    enabled: bool,
    threshold: float,
    model: Any = MODEL_PATH,
) -> LinkCounts:
    """Replace identity.probabilistic_links with this run's pairs (none when disabled)."""
    started = time.monotonic()
    key = sources = records = None
    if enabled:
        inputs = _scoring_inputs(threshold, model)
        # the cheap check first: the columns the candidates are computed from
        sources = probabilistic_inputs.sources_fingerprint(con, inputs)
        kept = probabilistic_inputs.reusable(con, TABLE, sources=sources)
        if kept is None:
            records = candidates(con)
            key = probabilistic_inputs.fingerprint(con, records, inputs)
            kept = probabilistic_inputs.reusable(con, TABLE, key=key)
        if kept is not None:
            stored = kept.pop("records", None)
            n_records = records.num_rows if records is not None else int(stored or 0)
            con.execute(f"update {TABLE} set as_of = cast(? as date)", [as_of])
            if sources is not None and key is not None:
                # the candidates matched where the sources did not: remember these sources
                probabilistic_inputs.remember(
                    con, key, TABLE, {**kept, "records": n_records}, sources
                )
            return LinkCounts(
                records=n_records,
                seconds=time.monotonic() - started,
                reused=True,
                **kept,
            )
    if records is not None:
        state = scoring_state.path_for(con)
        scoring = score(records, threshold, model, state, scoring_state.inputs_key(inputs))
    else:
        scoring = Scoring(_no_links(), 0, 0)
    links = scoring.links
    con.execute("create schema if not exists identity")
    # replaced whole (never appended): the table is this run's pairs and nothing else.
    # identifier_value carries the probability so the merge log and the health check, which
    # name a link by its value, show it. Shaped by DuckDB: in the warehouse, or in a scratch
    # DuckDB whose rows are then stored in another engine's warehouse.
    shaping = f"""
        select
            cast(record_key as varchar) as record_key,
            cast(node_key as varchar) as node_key,
            'probabilistic' as identifier_type,
            'p=' || printf('%.6f', match_probability) as identifier_value,
            '{RULE}' as rule,
            cast(match_probability as double) as match_probability,
            cast(match_weight as double) as match_weight,
            cast(? as date) as as_of,
            -- per comparison its level and weight (JSON): `c360 identity explain` shows it
            cast(comparison_levels as varchar) as comparison_levels
        from _probabilistic_links
        order by record_key, node_key
    """
    if dialect_of(con) == "duckdb":
        con.register("_probabilistic_links", links)
        try:
            replace_table(con, TABLE, shaping, [as_of])
        finally:
            con.unregister("_probabilistic_links")
    else:
        local = scratch_database()
        try:
            local.register("_probabilistic_links", links)
            shaped = local.sql(shaping, params=[as_of]).to_arrow_table()
        finally:
            local.close()
        store_table(con, TABLE, shaped)
    counts = {
        "links": links.num_rows,
        "refused_by_cluster_check": int(
            (links.schema.metadata or {}).get(b"refused_by_cluster_check", b"0")
        ),
        "refused_by_household_guard": int(
            (links.schema.metadata or {}).get(b"refused_by_household_guard", b"0")
        ),
    }
    probabilistic_inputs.remember(
        con,
        key,
        TABLE,
        {**counts, "records": records.num_rows if records is not None else 0},
        sources,
    )
    return LinkCounts(
        records=records.num_rows if records is not None else 0,
        seconds=time.monotonic() - started,
        rescored_records=scoring.rescored_records,
        kept_pairs=scoring.kept_pairs,
        **counts,
    )


def _scoring_inputs(threshold: float, model: Any) -> dict[str, Any]:
    """Everything besides the records that decides predict()'s pairs (probabilistic_inputs)."""
    from importlib.metadata import version

    from orchestration.identity import config as identity_config

    return {
        "threshold": float(threshold),
        "model": _model_dict(model),
        "config": repr(identity_config.load().probabilistic),
        # the code that scores (its SQL and constants, cluster check, block keys, nickname
        # groups, folding) and the library: a change in any may change the pairs
        "sources": [
            hashlib.sha256(Path(path).read_bytes()).hexdigest()
            for path in (
                __file__,
                blocking.__file__,
                given_names.__file__,
                fold.__file__,
                probabilistic_inputs.__file__,
            )
        ],
        "splink": version("splink"),
        # the groups themselves, not their count: the nickname level and household guard read them
        "nicknames": hashlib.sha256(
            json.dumps(given_names.groups(), sort_keys=True).encode()
        ).hexdigest(),
    }


def train(con: duckdb.DuckDBPyConnection, out: Path = MODEL_PATH) -> dict[str, Any]:
    """Fit the model on a resolved warehouse (deterministic links as labels) and save it."""
    from splink import block_on

    records = candidates(con)
    linker, scratch = _linker(records, settings())
    try:
        for name, types in (("contact_labels", CONTACT_LABELS), ("address_labels", ADDRESS_LABELS)):
            scratch.register(
                "labels_arrow", con.sql(LABELS_SQL.format(types=types)).to_arrow_table()
            )
            scratch.execute(f"create table {name} as select * from labels_arrow")
            scratch.unregister("labels_arrow")
        linker.training.estimate_probability_two_random_records_match(
            [block_on("email"), block_on("phone")], recall=0.8
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=42)
        linker.training.estimate_m_from_pairwise_labels("contact_labels")
        model = linker.misc.save_model_to_json()
        if scratch.execute("select count(*) from address_labels").fetchall()[0][0]:
            linker.training.estimate_m_from_pairwise_labels("address_labels")
            by_address = linker.misc.save_model_to_json()
            for comparison, other in zip(
                model["comparisons"], by_address["comparisons"], strict=True
            ):
                if comparison["output_column_name"] in TRAINED_ON_ADDRESS_LABELS:
                    comparison["comparison_levels"] = other["comparison_levels"]
    finally:
        scratch.close()
    # A level no labelled pair reached (the same postal code on another street: one person's
    # records rarely disagree that way) has no m; it is rare, not impossible.
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if not level.get("is_null_level") and "m_probability" not in level:
                level["m_probability"] = UNSEEN_LEVEL_M
    model.pop("linker_uid", None)
    out.write_text(json.dumps(model, indent=2, sort_keys=True) + "\n")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.identity.probabilistic")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("train", help="fit the model on a resolved warehouse and save it")
    fit.add_argument("--warehouse", required=True, help="a warehouse after a deterministic run")
    fit.add_argument("--out", default=str(MODEL_PATH))
    args = parser.parse_args(argv)
    with connect_warehouse(Path(args.warehouse), read_only=True) as con:
        train(con, Path(args.out))
    print(f"model saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
