"""Phone numbers → E.164 with libphonenumber: the formats sources write, the reasons for refusing a
text, full coverage of the contracts' phone columns, and an append-only incremental lookup."""

import duckdb
import pytest

from orchestration.contracts.model import all_source_contracts
from orchestration.identity import phones


@pytest.mark.parametrize(
    ("text", "region", "e164"),
    [
        ("+12125550134", "", "+12125550134"),
        ("+1 (212) 555-0134", "", "+12125550134"),
        ("(212) 555-0134", "US", "+12125550134"),
        ("212.555.0134", "", "+12125550134"),  # no region: the default (US)
        ("+44 7400 123456", "", "+447400123456"),
        ("0044 7400 123456", "", "+447400123456"),  # 00 = international prefix
        ("07400 123456", "GB", "+447400123456"),
        ("+33 6 12 34 56 78", "", "+33612345678"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("00491511234567", "", "+491511234567"),
        (" 0151 1234567 ", "de", "+491511234567"),
    ],
)
def test_formats_sources_write_become_one_e164(text, region, e164):
    assert phones.to_e164(text, region).e164 == e164


@pytest.mark.parametrize(
    ("text", "reason"),
    [("12", "impossible_number"), ("call me", "unparseable: not_a_number"), ("+", "unparseable")],
)
def test_texts_that_are_no_phone_number_give_null_and_a_reason(text, reason):
    parsed = phones.to_e164(text, "US")
    assert parsed.e164 is None
    assert parsed.reason.startswith(reason)


def test_every_contract_phone_column_is_normalised():
    covered = {(table, col.column) for table, col in phones.PHONE_INPUTS}
    for contract in all_source_contracts():
        for name in contract.column_names:
            if "phone" in name or name == "contact_point":
                assert (contract.id, name) in covered, (
                    f"{contract.id}.{name} is not in PHONE_INPUTS"
                )


def test_refresh_parses_each_text_once_and_appends():
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute(
        "create table raw.crm__contacts (phone varchar, mobile_phone varchar, country_code varchar)"
    )
    con.execute(
        "insert into raw.crm__contacts values ('07400 123456', null, 'GB'), "
        "('07400 123456', '12', 'GB'), (' ', null, 'US')"
    )
    con.execute("create table raw.loyalty__members (phone varchar)")
    con.execute("insert into raw.loyalty__members values ('07400 123456')")
    first = phones.refresh(con, "2026-11-20", fallback_region="US")
    # GB national, '12', and the same text without a region (read as US: not a possible number)
    assert first["new_texts"] == 3
    assert first["new_unusable"] == 2
    rows = dict(
        con.execute(
            "select raw_text || '|' || region, e164 from reference.phone_numbers"
        ).fetchall()
    )
    assert rows == {"07400 123456|GB": "+447400123456", "12|GB": None, "07400 123456|": None}
    con.execute("insert into raw.loyalty__members values ('+1 212 555 0134')")
    second = phones.refresh(con, "2026-11-21", fallback_region="US")
    assert second["new_texts"] == 1
    assert con.execute(
        "select first_seen_as_of::varchar from reference.phone_numbers where raw_text = '+1 212 555 0134'"
    ).fetchone() == ("2026-11-21",)


def test_phone_inputs_come_from_the_identifier_columns_with_their_regions_and_row_types():
    """The lookup parses exactly the phone columns erasure matches (one list), each with its
    region column, and a consent contact point only on rows typed phone."""
    sql = phones.inputs_sql({table for table, _ in phones.PHONE_INPUTS})
    for part in (
        "select distinct phone as raw_text, coalesce(upper(trim(country_code)), '') as region "
        "from raw.crm__contacts",
        "select distinct mobile_phone as raw_text, coalesce(upper(trim(country_code)), '') as "
        "region from raw.crm__contacts",
        "select distinct phone as raw_text, coalesce(upper(trim(country_code)), '') as region "
        "from raw.shop__customers",
        "select distinct phone as raw_text, '' as region from raw.loyalty__members",
        "from raw.consent__erasure_requests where contact_point is not null and "
        "trim(contact_point) <> '' and contact_point_type = 'phone'",
    ):
        assert part in sql, part
    assert sql.count(" union ") == 6  # seven columns: the four above and three consent tables
    assert "email" not in sql


def test_texts_differing_only_in_separators_are_parsed_once_and_alike(monkeypatch):
    """to_e164_many parses one text per (plus, digits, region) of the plain texts: the result of
    every text, plain or not, equals to_e164 of that text on its own."""
    import random

    rnd = random.Random(7)
    regions = ["US", "GB", "FR", "DE", "", "gb", "ZZ", "BR", "IN"]
    pieces = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", " ", "(", ")", ".", "-"]
    cases = [
        ("+12125550134", ""),
        ("(212) 555-0134", "US"),
        ("0044 7400 123456", ""),
        ("1-2", "US"),
        ("12", "US"),
        ("1 2 3", "US"),
        ("+" + "1" * 300, "US"),
        ("212 555 0134 x12", "US"),
    ]
    for _ in range(6000):
        body = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 18)))
        prefix = rnd.choice(["", "", "+", "00", " +", "0", "+1 ", "+44 (0) "])
        cases.append((prefix + body, rnd.choice(regions)))
    # one number in several styles: the memo must hand each text its own (equal) answer
    for digits in ("2125550134", "7400123456", "612345678"):
        for style in ("{}", "({}) {}-{}", "{}.{}.{}", "+1 {}", "00{}", "0{}"):
            parts = (digits[:3], digits[3:6], digits[6:])
            cases.append((style.format(*parts) if "{}-" in style or "." in style
                          else style.format(digits), rnd.choice(regions)))  # fmt: skip
    one_by_one = [phones.to_e164(text, region) for text, region in cases]
    assert phones.to_e164_many(cases, workers=1) == one_by_one
    # the same in two worker processes (the lookup of a large first night)
    monkeypatch.setattr(phones, "PARALLEL_FROM_TEXTS", 1000)
    assert phones.to_e164_many(cases, workers=2) == one_by_one
    plain = [c for c in cases if phones._plain_key(phones._cleaned(c[0])) is not None]
    assert len(plain) > 3000  # the fast path was exercised
