"""Erasure's identifier matching in SQL (privacy/column_index.py): every distinct raw value gets
exactly the (kind, normalised value) `identifiers.normalise` gives it, whether the warehouse
normalises it (ASCII text, phones in reference.phone_numbers) or Python does (everything else);
and a phone erasure reaches the person's number in national, international, 00-prefixed, vanity
and extension forms, while another country's number with the same digits stays."""

import datetime as dt

import duckdb
import pytest

from orchestration.identity import phones
from orchestration.privacy import column_index
from orchestration.privacy.erasure import erase_pending
from orchestration.privacy.identifiers import IDENTIFIER_COLUMNS, kind_of_row, normalise

AS_OF = dt.date(2026, 11, 21)
META = "_batch_id varchar, _loaded_at timestamp, _source_file varchar"
EMAILS = [" Gone.Person@Example.org", "gone.person@example.org\t", "\u00a0gone.person@example.org",
          "ÅSA@example.se", "İlker@example.org", "   ", "", "plain@example.org"]  # fmt: skip
PHONES = [("+14155550199", "US"), ("(415) 555-0199", " us "), ("415.555.0199 x12", "US"),
          ("0044 20 7946 0018", "US"), ("020 7946 0018", "gb"), ("1-800-FLOWERS", None),
          ("12", "US"), ("\u00a0415 555 0199", "US"), ("415 555 0199", "\u00a0GB"),
          ("415 555 0199", ""), ("not a phone", "US"), ("+1 415 555 0199", "XX")]  # fmt: skip
CONSENT = [("Gone.Person@example.org ", "email"), ("(415) 555-0199", "phone"),
           ("(415) 555-0199", " PHONE "), ("CUST9", "customer_id"), ("x@y.org", "sms"),
           ("x@y.org", None), ("x@y.org", "\u00a0email"), ("+14155550199", "Phone")]  # fmt: skip


@pytest.fixture(autouse=True)
def _key(monkeypatch, tmp_path):
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_ERASURE_KEY", "unit-test-key-" + "x" * 32)


def _raw(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema raw")
    con.execute(
        "create table raw.crm__contacts (contact_id varchar, email varchar, phone varchar, "
        f"mobile_phone varchar, country_code varchar, {META})"
    )
    rows = [(f" C{i} " if i % 2 else f"C{i}", EMAILS[i % len(EMAILS)], p, None, r)
            for i, (p, r) in enumerate(PHONES)]  # fmt: skip
    rows.append(("Ç1", None, None, "+14155550199", "US"))
    con.executemany("insert into raw.crm__contacts values (?, ?, ?, ?, ?, 'b', now(), 'f')", rows)
    con.execute(
        "create table raw.consent__events (contact_point varchar, contact_point_type varchar, "
        f"{META})"
    )
    con.executemany("insert into raw.consent__events values (?, ?, 'b', now(), 'f')", CONSENT)


def _python_index(con, table: str, col) -> set[tuple]:
    c, extra = col.column, col.region_column or col.type_column
    e = extra if extra else "null"
    out = set()
    for value, other in con.execute(
        f"select distinct {c}, {e} from {table} where {c} is not null"
    ).fetchall():
        kind = kind_of_row(col, other) if col.type_column else col.kind
        norm = normalise(kind, value, other if col.region_column else None) if kind else None
        if norm is not None:
            out.add((value, kind, norm))
    return out


@pytest.mark.parametrize("lookup", ["full", "partial", "absent"])
def test_the_sql_index_equals_python_normalise_for_every_value(lookup, monkeypatch):
    calls = []
    real = column_index.normalise
    monkeypatch.setattr(column_index, "normalise", lambda *a: calls.append(a) or real(*a))
    with duckdb.connect() as con:
        _raw(con)
        if lookup != "absent":
            phones.refresh(con, AS_OF.isoformat())
        if lookup == "partial":
            # texts the lookup lacks (a phone step not run yet) fall back to Python
            con.execute("delete from reference.phone_numbers where raw_text like '%(%'")
        index = column_index.ColumnIndex(con)
        compared = 0
        for cid in ("crm__contacts", "consent__events"):
            cols = IDENTIFIER_COLUMNS[cid]
            # every identifier column of the table is text: one index holds them all
            assert index._groups(f"raw.{cid}", cols) == [tuple(cols)]
            idx = index.table(f"raw.{cid}", tuple(cols))
            for col in cols:
                got = set(
                    con.execute(
                        f"select value, kind, norm from {idx} where col = ?", [col.column]
                    ).fetchall()
                )
                want = _python_index(con, f"raw.{cid}", col)
                assert got == want, (cid, col.column, got ^ want)
                compared += len(want)
        index.close()
        assert not con.execute(
            "select count(*) from duckdb_tables() where table_name like '_c360_erasure_idx_%'"
        ).fetchone()[0]
    assert compared > 30
    # the warehouse normalised the ASCII values: Python saw only the rest
    python_values = {a[1] for a in calls}
    assert "C0" not in python_values and "plain@example.org" not in python_values
    assert "Ç1" in python_values and "ÅSA@example.se" in python_values
    # a phone of a CRM row the lookup holds is its E.164 from the lookup, not parsed again
    assert (("phone", "+14155550199", "US") in calls) == (lookup == "absent")
    assert (("phone", "(415) 555-0199", " us ") in calls) == (lookup != "full")


def _warehouse_with_contacts(tmp_path) -> duckdb.DuckDBPyConnection:
    """A warehouse file with an empty raw.crm__contacts."""
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute("create schema raw")
    con.execute(
        "create table raw.crm__contacts (contact_id varchar, email varchar, phone varchar, "
        f"mobile_phone varchar, country_code varchar, {META})"
    )
    return con


def test_a_phone_erasure_reaches_every_written_form_of_the_number(tmp_path):
    con = _warehouse_with_contacts(tmp_path)
    con.execute(
        "insert into raw.crm__contacts values "
        "('C1', null, '800-356-9377', null, 'US', 'b', now(), 'f'), "
        "('C2', null, null, '+1 800 356 9377 ext. 4', 'us ', 'b', now(), 'f'), "
        "('C3', null, '0800 356 9377', null, 'GB', 'b', now(), 'f'), "  # the UK number: stays
        "('C4', null, '+1 415 555 0100', null, 'US', 'b', now(), 'f')"
    )
    con.execute(
        "create table raw.loyalty__members (member_id varchar, crm_contact_id varchar, "
        f"email varchar, phone varchar, {META})"
    )
    con.execute(
        "insert into raw.loyalty__members values ('L1', null, null, '001 800 356 9377', 'b', "
        "now(), 'f'), ('L2', null, null, '+44 800 356 9377', 'b', now(), 'f')"
    )
    for t in ("consent__events", "consent__erasure_requests"):
        con.execute(
            f"create table raw.{t} (erasure_request_id varchar, contact_point varchar, "
            f"contact_point_type varchar, requested_at timestamp, {META})"
        )
    con.execute(
        "insert into raw.consent__events values (null, '(800) 356-9377', 'phone', null, 'b', "
        "now(), 'f'), (null, '(800) 356-9377', 'email', null, 'b', now(), 'f')"
    )
    con.execute(
        "insert into raw.consent__erasure_requests values ('ER1', '1-800-FLOWERS', 'phone', "
        "timestamp '2026-11-21 10:00:00', 'b', now(), 'f')"
    )
    phones.refresh(con, AS_OF.isoformat())
    summary = erase_pending(con, AS_OF, "run1", landing=tmp_path / "l", outbox=tmp_path / "o")
    assert summary.requests == 1
    assert con.execute("select contact_id from raw.crm__contacts order by 1").fetchall() == [
        ("C3",),
        ("C4",),
    ]
    assert con.execute("select member_id from raw.loyalty__members").fetchall() == [("L2",)]
    # a consent row holding the number's text goes too, whatever its type says
    assert con.execute("select count(*) from raw.consent__events").fetchone() == (0,)
    assert con.execute(
        "select count(*) from reference.phone_numbers where e164 = '+18003569377'"
    ).fetchone() == (0,)
    assert con.execute(
        "select count(*) from reference.phone_numbers where e164 = '+448003569377'"
    ).fetchone() == (2,)
    con.close()


def test_a_household_phone_keeps_its_lookup_row_while_another_person_holds_it(tmp_path):
    """An erasure by email finds the person's phones through their row: the text only they held
    leaves reference.phone_numbers, the one a household member's row still holds stays (staging
    reads that member's E.164 from it)."""
    con = _warehouse_with_contacts(tmp_path)
    con.execute(
        "insert into raw.crm__contacts values "
        "('C1', 'gone@example.org', '415 555 0100', '415 555 0111', 'US', 'b', now(), 'f'), "
        "('C2', 'stays@example.org', '415 555 0100', null, 'US', 'b', now(), 'f')"
    )
    con.execute(
        "create table raw.consent__erasure_requests (erasure_request_id varchar, "
        "contact_point varchar, contact_point_type varchar, requested_at timestamp, "
        f"{META})"
    )
    con.execute(
        "insert into raw.consent__erasure_requests values ('ER1', 'gone@example.org', 'email', "
        "timestamp '2026-11-21 10:00:00', 'b', now(), 'f')"
    )
    phones.refresh(con, AS_OF.isoformat())
    assert erase_pending(con, AS_OF, "run1", landing=tmp_path / "l", outbox=tmp_path / "o")
    assert con.execute("select contact_id from raw.crm__contacts").fetchall() == [("C2",)]
    lookup = dict(con.execute("select raw_text, e164 from reference.phone_numbers").fetchall())
    assert lookup == {"415 555 0100": "+14155550100"}  # C1's own mobile text is gone


def test_one_index_per_value_type_keeps_each_columns_raw_values_apart():
    """A table's text columns share one index, its integer ids another (their raw values keep
    their type for the erasure's joins), a column of any other type is normalised in Python
    alone; `pairs` says which column holds each request's identifier, in one statement per
    index."""
    member = "6f1c1b2a-0000-4000-8000-000000000007"
    with duckdb.connect() as con:
        con.execute("create schema raw")
        con.execute(
            "create table raw.loyalty__members (member_id uuid, crm_contact_id bigint, "
            f"email varchar, phone varchar, {META})"
        )
        con.execute(
            "insert into raw.loyalty__members values "
            f"('{member}', 7, 'Seven@Example.org', '+1 415 555 0107', 'b', now(), 'f'), "
            "(gen_random_uuid(), 8, 'eight@example.org', '+1 415 555 0107', 'b', now(), 'f')"
        )
        index = column_index.ColumnIndex(con)
        cols = IDENTIFIER_COLUMNS["loyalty__members"]
        groups = index._groups("raw.loyalty__members", cols)
        assert sorted([c.column for c in g] for g in groups) == [
            ["crm_contact_id"],
            ["email", "phone"],
            ["member_id"],
        ]
        ids = [
            {("crm_contact_id", "7"), ("email", "seven@example.org")},
            {("loyalty_member_id", member)},
        ]
        found = index.pairs("raw.loyalty__members", cols, ids)
        assert found["crm_contact_id"] == [(0, 7)]
        assert found["email"] == [(0, "Seven@Example.org")]
        assert [(r, str(v)) for r, v in found["member_id"]] == [(1, member)]
        assert "phone" not in found  # it holds no identifier of the requests
        index.close()
        assert not con.execute(
            "select count(*) from duckdb_tables() where table_name like '_c360_erasure_idx_%'"
        ).fetchone()[0]
