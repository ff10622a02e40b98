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
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

TABLE = "identity.probabilistic_links"
MODEL_PATH = Path(__file__).with_name("probabilistic_model.json")
RULE = "probabilistic"

# One row per non-web source record with the columns the model compares. Names are reduced to
# lower-case letters (accents stripped) so 'José' and 'jose' agree; email and phone values the
# deterministic rules refused as junk (blocklist, shared by too many records) are no evidence
# here either. A value refused as a household's (first_name_conflict) stays: the name comparison
# weighs it. Web anonymous ids carry no attribute to compare.
CANDIDATES_SQL = """
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
        nullif(regexp_replace(lower(strip_accents(records.first_name)), '[^a-z]', '', 'g'), '')
            as first_name,
        nullif(regexp_replace(lower(strip_accents(records.last_name)), '[^a-z]', '', 'g'), '')
            as last_name,
        case when junk_email.record_key is null then records.email_normalized end as email,
        case when junk_phone.record_key is null then records.phone_e164 end as phone,
        records.date_of_birth,
        -- case, spacing and punctuation differ between systems ('12 OAK AVE.'), as in the
        -- deterministic name_address key
        nullif(lower(regexp_replace(records.postal_code, '[^A-Za-z0-9]', '', 'g')), '')
            as postal_code,
        nullif(lower(regexp_replace(records.address_line1, '[^A-Za-z0-9]', '', 'g')), '')
            as address_line1,
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
    *,
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

    def metadata(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "links": self.links,
            "seconds": round(self.seconds, 2),
        }


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


def settings():  # -> splink.SettingsCreator (imported lazily: the code location stays light)
    """The model's comparisons and blocking rules (untrained)."""
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


def _linker(candidates: pa.Table, model: Any):
    """A Splink linker over `candidates` (a settings creator, a model dict or a JSON path) and
    the scratch connection it works in (the caller closes it)."""
    from splink import DuckDBAPI, Linker

    # Splink's scratch tables live in a private in-memory DuckDB, never in the warehouse file.
    scratch = duckdb.connect()
    scratch.register("candidates_arrow", candidates)
    scratch.execute("create table candidates as select * from candidates_arrow")
    scratch.unregister("candidates_arrow")
    db_api = DuckDBAPI(scratch)
    return Linker(db_api.register("candidates"), model, log_level=logging.WARNING), scratch


def candidates(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The records the model compares, read from the warehouse (grain: one non-web record)."""
    return con.sql(CANDIDATES_SQL).to_arrow_table()


def _no_links() -> pa.Table:
    return pa.table(
        {
            "record_key": pa.array([], pa.string()),
            "node_key": pa.array([], pa.string()),
            "match_probability": pa.array([], pa.float64()),
            "match_weight": pa.array([], pa.float64()),
        }
    )


def predict(candidate_records: pa.Table, threshold: float, model: Any = MODEL_PATH) -> pa.Table:
    """Pairs (record_key < node_key) at or above `threshold` sharing no email or phone, ordered.

    Grain: one row per record pair; columns record_key, node_key, match_probability, match_weight."""
    if candidate_records.num_rows < 2:
        return _no_links()
    linker, scratch = _linker(candidate_records, str(model) if isinstance(model, Path) else model)
    try:
        scored = linker.inference.predict(threshold_match_probability=threshold)
        return scratch.sql(
            f"""
            select
                least(scored.unique_id_l, scored.unique_id_r) as record_key,
                greatest(scored.unique_id_l, scored.unique_id_r) as node_key,
                scored.match_probability,
                scored.match_weight
            from {scored.physical_name} as scored
            inner join candidates as l on l.unique_id = scored.unique_id_l
            inner join candidates as r on r.unique_id = scored.unique_id_r
            where scored.match_probability >= {float(threshold)!r}
                -- a shared value is the deterministic rules' call (linked, or refused on purpose
                -- by a guard: two birth dates at one name and address are two people)
                and not coalesce(scored.email_l = scored.email_r, false)
                and not coalesce(scored.phone_l = scored.phone_r, false)
                and not coalesce(len(list_intersect(l.name_addresses, r.name_addresses)) > 0, false)
            order by record_key, node_key
            """
        ).to_arrow_table()
    finally:
        scratch.close()


def refresh(
    con: duckdb.DuckDBPyConnection,
    as_of: str,
    enabled: bool,
    threshold: float,
    model: Any = MODEL_PATH,
) -> LinkCounts:
    """Replace identity.probabilistic_links with this run's pairs (none when disabled)."""
    started = time.monotonic()
    records = candidates(con) if enabled else None
    links = predict(records, threshold, model) if records is not None else _no_links()
    con.execute("create schema if not exists identity")
    con.register("_probabilistic_links", links)
    try:
        # replaced whole (never appended): the table is this run's pairs and nothing else.
        # identifier_value carries the probability so the merge log and the health check,
        # which name a link by its value, show it.
        con.execute(
            f"""
            create or replace table {TABLE} as
            select
                cast(record_key as varchar) as record_key,
                cast(node_key as varchar) as node_key,
                'probabilistic' as identifier_type,
                'p=' || printf('%.6f', match_probability) as identifier_value,
                '{RULE}' as rule,
                cast(match_probability as double) as match_probability,
                cast(match_weight as double) as match_weight,
                cast(? as date) as as_of
            from _probabilistic_links
            order by record_key, node_key
            """,
            [as_of],
        )
    finally:
        con.unregister("_probabilistic_links")
    return LinkCounts(
        records=records.num_rows if records is not None else 0,
        links=links.num_rows,
        seconds=time.monotonic() - started,
    )


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
    with duckdb.connect(args.warehouse, read_only=True) as con:
        train(con, Path(args.out))
    print(f"model saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
