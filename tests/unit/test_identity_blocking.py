"""The block-size cap of probabilistic blocking (orchestration/identity/blocking.py).

A planted giant block: 2,000 records named John Smith, each with its own birth date and address,
plus true duplicates among them (the same person again: the same birth date and address, some
with given and family name swapped). Without the cap the first + last name rule alone pairs
every two of them (1,999,000 pairs); with it the pairs Splink generates stay the duplicates',
and the duplicates still link through the birth-date and address rules.
"""

from __future__ import annotations

import datetime as dt
import json
import string

import pyarrow as pa
import pytest

from orchestration.identity import blocking, probabilistic
from orchestration.identity import config as identity_config
from orchestration.warehouse import scratch

GIANT = 2000
DUPLICATES = 20  # of the first 20 persons: the same record again
SWAPPED = 5  # of persons 20-24: a record with given and family name swapped


def _street(i: int) -> str:
    letters = ""
    while True:
        i, r = divmod(i, 26)
        letters = string.ascii_lowercase[r] + letters
        if not i:
            return letters + "road"


def _records() -> tuple[pa.Table, set[tuple[str, str]]]:
    """Candidate records (the columns probabilistic.candidates() gives) and the true pairs."""
    rows, truth = [], set()

    def add(key: str, person: int, first: str, last: str) -> None:
        rows.append(
            {
                "unique_id": key,
                "first_name": first,
                "last_name": last,
                "email": None,
                "phone": None,
                "date_of_birth": (dt.date(1940, 1, 1) + dt.timedelta(days=person)).isoformat(),
                "postal_code": f"{10000 + person}",
                "address_line1": f"{1 + person % 90}{_street(person)}",
                "street_number": f"{1 + person % 90}",
                "street": _street(person),
                "city": "springfield",
                "name_addresses": None,
                "phone_stem": None,
                "email_domain": None,
                "email_tail": None,
            }
        )

    for person in range(GIANT):
        add(f"r|crm:{person:05d}", person, "john", "smith")
    for person in range(DUPLICATES):
        add(f"r|loyalty:{person:05d}", person, "john", "smith")
        truth.add((f"r|crm:{person:05d}", f"r|loyalty:{person:05d}"))
    for person in range(DUPLICATES, DUPLICATES + SWAPPED):
        add(f"r|loyalty:{person:05d}", person, "smith", "john")
        truth.add((f"r|crm:{person:05d}", f"r|loyalty:{person:05d}"))
    schema = pa.schema(
        [
            (name, pa.list_(pa.string()) if name == "name_addresses" else pa.string())
            for name in rows[0]
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema), truth


def splink_pair_count(records: pa.Table, config: identity_config.Probabilistic) -> int:
    """Record pairs Splink generates from the configured blocking rules (its own exact count)."""
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    con = scratch()
    try:
        con.register("records_arrow", records)
        con.execute("create table records as select * from records_arrow")
        blocking.add_keys(con, "records", list(config.blocking), config.max_block_size)
        counts = count_comparisons_from_blocking_rules(
            DuckDBAPI(con).register("records"),
            blocking_rules=[probabilistic.blocking_rule(r) for r in config.blocking],
            link_type="dedupe_only",
            record_sample_proportion=1.0,
        )
        return int(counts[-1]["cumulative_comparison_count"])
    finally:
        con.close()


def test_a_giant_block_is_skipped_and_its_pairs_stay_bounded():
    records, truth = _records()
    config = identity_config.Probabilistic(enabled=True)
    assert config.max_block_size < GIANT
    # the rules other than the names pair exactly the true duplicates (own dates, own addresses);
    # the five (smith, john) records are a name block of five, under the cap
    assert splink_pair_count(records, config) == len(truth) + SWAPPED * (SWAPPED - 1) // 2
    # without the cap the name rule alone pairs every two John Smiths
    uncapped = identity_config.Probabilistic(enabled=True, max_block_size=10 * GIANT)
    assert splink_pair_count(records, uncapped) >= GIANT * (GIANT - 1) // 2


def test_the_report_counts_what_the_cap_skipped():
    records, _ = _records()
    con = scratch()
    try:
        con.register("records_arrow", records)
        con.execute("create table records as select * from records_arrow")
        report = blocking.add_keys(con, "records", list(identity_config.DEFAULT_BLOCKING), 200)
        kept = con.execute(
            "select count(*) from records where _block__first_name__last_name is not null"
        ).fetchall()[0][0]
    finally:
        con.close()
    by_rule = {r.rule: r for r in report.rules}
    names = by_rule["first_name + last_name"]
    assert (names.keys, names.records, names.largest_block) == (1, GIANT + DUPLICATES, 2020)
    assert names.pairs == 2020 * 2019 // 2
    swapped = by_rule["swapped first_name + last_name"]  # (john, smith) × (smith, john)
    assert (swapped.keys, swapped.records, swapped.pairs) == (1, 2025, 2020 * SWAPPED)
    assert by_rule["date_of_birth"].keys == 0
    assert kept == SWAPPED  # only the five (smith, john) records keep a name block
    meta = report.metadata()
    assert meta["blocks_skipped"] == 2
    assert meta["pairs_skipped_by_cap"] == names.pairs + swapped.pairs
    assert set(json.loads(meta["blocks_skipped_by_rule"])) == {names.rule, swapped.rule}


def test_true_duplicates_in_a_giant_block_still_link():
    records, truth = _records()
    rules = identity_config.Probabilistic(enabled=True).blocking
    model = json.loads(probabilistic.MODEL_PATH.read_text())
    model["blocking_rules_to_generate_predictions"] = [
        {"blocking_rule": probabilistic.blocking_rule(r), "sql_dialect": "duckdb"} for r in rules
    ]
    links = probabilistic.predict(records, 0.9, model)
    linked = set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))
    exact = {p for p in truth if p[1] < f"r|loyalty:{DUPLICATES:05d}"}
    assert exact <= linked  # found through birth date and address, not the name block
    assert linked <= truth  # no namesake with another birth date and address
    report = blocking.last_report()
    assert report is not None and report.keys >= 1


def test_max_block_size_is_validated():
    with pytest.raises(identity_config.IdentityConfigError, match="max_block_size"):
        identity_config.parse(
            {"probabilistic": {"enabled": True, "max_block_size": 1}}, "vars.identity"
        )


@pytest.mark.parametrize("cap", [200, 10 * GIANT])
def test_prediction_joins_on_the_key_alone_and_pairs_the_same_records(cap):
    """blocking.prediction_sql: a capped rule's key equality pairs exactly the records the rule
    with its column equalities pairs (nulls, skipped blocks and kept blocks alike); the swapped
    rule, whose key also holds the straight pairs of its block, and other SQL stay as written."""
    records, _ = _records()
    rows = records.to_pylist()
    # a record without a street and one without a birth date: null never pairs
    rows += [
        {**rows[0], "unique_id": "r|shop:nostreet", "street": None, "address_line1": None},
        {**rows[1], "unique_id": "r|shop:nodate", "date_of_birth": None},
    ]
    rules = list(identity_config.Probabilistic(enabled=True).blocking)
    con = scratch()
    try:
        con.register("records_arrow", pa.Table.from_pylist(rows, schema=records.schema))
        con.execute("create table records as select * from records_arrow")
        blocking.add_keys(con, "records", rules, cap)

        def pairs(sql: str) -> set[tuple[str, str]]:
            return set(
                con.execute(
                    f"select l.unique_id, r.unique_id from records as l join records as r "
                    f"on {sql} where l.unique_id < r.unique_id"
                ).fetchall()
            )

        rewritten = 0
        for rule in rules:
            written = blocking.splink_rule(rule)
            keyed = blocking.prediction_sql(written)
            if rule.swapped:
                assert keyed == written
                continue
            assert keyed == f'l."{blocking.key_column(rule)}" = r."{blocking.key_column(rule)}"'
            assert pairs(keyed) == pairs(written), rule
            rewritten += bool(pairs(written))
    finally:
        con.close()
    assert rewritten >= 3  # the comparison covered rules that pair records
    plain = '(l."first_name" = r."first_name") AND (l."last_name" = r."last_name")'
    assert blocking.prediction_sql(plain) == plain
    foreign = "l.first_name = r.first_name and l._block__date_of_birth = r._block__date_of_birth"
    assert blocking.prediction_sql(foreign) == foreign
