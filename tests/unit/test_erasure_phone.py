"""customer_360.is_erased (issue 16, core 4): an erasure of any contact point of the customer —
email or phone — marks the customer erased (and so unreachable on every channel). Builds the real
customer_360 model with dbt on a scratch DuckDB holding only the relations it reads."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tests import scratch_dbt

AS_OF = "2026-03-10"
# (customer_id, source, record id, email, phone)
RECORDS = [
    ("C1", "crm", "K1", "one@x.org", "+15550000001"),  # erased by phone only
    ("C2", "shop", "S2", None, "+15550000002"),  # no email at all, erased by phone
    ("C3", "crm", "K3", "three@x.org", "+15550000003"),  # erased by email
    ("C4", "crm", "K4", "four@x.org", "+15550000004"),  # nothing erased
]
# (contact_point, type, channel, is_erased)
CONSENT = [
    ("+15550000001", "phone", "sms", True),
    ("one@x.org", "email", "email", False),
    ("+15550000002", "phone", "sms", True),
    ("three@x.org", "email", "email", True),
    ("four@x.org", "email", "email", False),
    ("+15550000004", "phone", "sms", False),
]


def _build(tmp: Path) -> duckdb.DuckDBPyConnection:
    warehouse = tmp / "wh.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        for schema in ("intermediate", "marts", "staging"):
            con.execute(f"create schema {schema}")
        con.execute(
            "create table intermediate.int_identity__records (record_key varchar, source varchar, "
            "first_name varchar, last_name varchar, email_normalized varchar, phone_e164 varchar, "
            "date_of_birth date, address_line1 varchar, city varchar, postal_code varchar, "
            "country_code varchar, time_zone varchar, updated_at timestamp)"
        )
        con.execute(
            "create table marts.customer_id_map (source varchar, entity varchar, "
            "source_record_id varchar, record_key varchar, customer_id varchar, as_of date)"
        )
        for customer, source, rid, email, phone in RECORDS:
            key = f"r|{source}:{rid}"
            con.execute(
                "insert into intermediate.int_identity__records values "
                "(?, ?, 'Ann', 'Lee', ?, ?, null, null, null, null, 'US', null, ?)",
                [key, source, email, phone, dt.datetime(2026, 1, 1)],
            )
            con.execute(
                "insert into marts.customer_id_map values (?, 'contacts', ?, ?, ?, ?)",
                [source, rid, key, customer, dt.date.fromisoformat(AS_OF)],
            )
        con.execute(
            "create table intermediate.int_activity__orders (order_id varchar, shop_customer_id varchar, "
            "ordered_at timestamp, is_revenue boolean, total_amount decimal(18, 2))"
        )
        con.execute(
            "create table staging.stg_loyalty__members (loyalty_member_id varchar, "
            "loyalty_tier varchar, points_balance bigint)"
        )
        con.execute(
            "create table intermediate.int_activity__web_events (anonymous_id varchar, event_name varchar, "
            "occurred_at timestamp)"
        )
        con.execute(
            "create table intermediate.int_activity__email_engagement (email_normalized varchar, "
            "event_type varchar, occurred_at timestamp)"
        )
        con.execute(
            "create table marts.consent_state (contact_point varchar, contact_point_type varchar, "
            "channel varchar, purpose varchar, is_consented boolean, is_erased boolean)"
        )
        for cp, kind, channel, erased in CONSENT:
            con.execute(
                "insert into marts.consent_state values (?, ?, ?, 'marketing', ?, ?)",
                [cp, kind, channel, not erased, erased],
            )
    result = scratch_dbt.run(
        warehouse,
        ["run", "--quiet", "--select", "customer_360", "path:models/marts/customer_360/traits"],
        as_of=AS_OF,
        log_path=tmp / "logs",
    )
    if result.returncode:
        raise RuntimeError(result.stdout + result.stderr)
    return duckdb.connect(str(warehouse), read_only=True)


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    with _build(tmp_path_factory.mktemp("erasure_phone")) as con:
        return {
            r[0]: r[1:]
            for r in con.execute(
                "select customer_id, is_erased, is_email_reachable, is_sms_reachable, "
                "is_sms_marketing_consented from marts.customer_360"
            ).fetchall()
        }


def test_an_erasure_by_phone_marks_the_customer_erased(customers):
    assert set(customers) == {"C1", "C2", "C3", "C4"}
    erased = {c for c, row in customers.items() if row[0]}
    assert erased == {"C1", "C2", "C3"}


def test_a_customer_erased_by_phone_is_unreachable_on_every_channel(customers):
    assert customers["C1"] == (True, False, False, False)
    assert customers["C4"] == (False, True, True, True)
