"""The closed loop (issue 16, core 4): what the email platform reports back reaches consent_state
in the same night, and campaign_outcomes joins what was sent (activation.contact_history) to what
happened after it. Builds the real models with dbt on a scratch DuckDB holding only the raw tables
they read (plus customer_id_map and the phone lookup, which they ref)."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from tests import scratch_dbt

AS_OF = "2026-03-10"
MODELS = (
    "stg_consent__events stg_consent__suppressions stg_consent__erasure_requests "
    "stg_email__engagement int_activity__email_engagement stg_shop__orders int_activity__orders "
    "consent_state "
    "campaign_outcomes"
)
META = "_batch_id varchar, _loaded_at timestamp, _source_file varchar"


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# (id, contact_point, type, channel, purpose, status, captured_at)
CONSENT_EVENTS = [
    ("CE1", "unsub@x.org", "email", "email", "marketing", "granted", "2026-03-01 09:00:00"),
    ("CE2", "regrant@x.org", "email", "email", "marketing", "granted", "2026-03-01 09:00:00"),
    ("CE3", "regrant@x.org", "email", "email", "marketing", "granted", "2026-03-06 09:00:00"),
    ("CE4", "hard@x.org", "email", "email", "marketing", "granted", "2026-03-01 09:00:00"),
    ("CE5", "hard@x.org", "email", "email", "product_updates", "granted", "2026-03-01 09:00:00"),
    ("CE6", "soft@x.org", "email", "email", "marketing", "granted", "2026-03-01 09:00:00"),
    ("CE7", "later@x.org", "email", "email", "marketing", "granted", "2026-03-01 09:00:00"),
    ("CE8", "unsub@x.org", "email", "email", "product_updates", "granted", "2026-03-01 09:00:00"),
    ("CE9", "+15550000001", "phone", "sms", "marketing", "granted", "2026-03-01 09:00:00"),
    ("CE10", "spam@x.org", "email", "email", "marketing", "granted", "2026-03-01 09:00:00"),
    ("CE11", "spam@x.org", "email", "email", "product_updates", "granted", "2026-03-01 09:00:00"),
]
# (id, email, campaign, event_type, bounce_type, occurred_at)
ENGAGEMENT = [
    ("EE1", " Unsub@X.org", "CMP-1", "unsubscribed", None, "2026-03-05 10:00:00"),
    ("EE2", "regrant@x.org", "CMP-1", "unsubscribed", None, "2026-03-03 10:00:00"),
    ("EE3", "hard@x.org", "CMP-1", "bounced", "hard", "2026-03-04 10:00:00"),
    ("EE4", "soft@x.org", "CMP-1", "bounced", "soft", "2026-03-04 10:00:00"),
    ("EE5", "later@x.org", "CMP-1", "unsubscribed", None, "2026-03-12 10:00:00"),
    ("EE6", "none@x.org", "CMP-1", "unsubscribed", None, "2026-03-02 10:00:00"),
    ("EE7", "Spam@x.org ", "CMP-1", "complained", None, "2026-03-05 10:00:00"),
    # campaign outcomes: sent.one@x.org got a send at as_of 2026-03-01 (window 03-02 .. 03-09)
    ("EE10", "sent.one@x.org", "CMP-2", "delivered", None, "2026-03-02 00:00:05"),
    ("EE11", "sent.one@x.org", "CMP-2", "opened", None, "2026-03-03 08:00:00"),
    ("EE12", "sent.one@x.org", "CMP-2", "clicked", None, "2026-03-09 08:00:00"),  # after window
    ("EE13", "sent.one@x.org", "CMP-0", "opened", None, "2026-03-01 20:00:00"),  # before it
]
# (id, contact_point, type, requested_at)
ERASURES = [("ER1", "Erased@x.org", "email", "2026-03-04 12:00:00")]
# (id, contact_point, type, channel, reason, suppressed_at)
SUPPRESSIONS = [("SUP1", "+15550000001", "phone", "all", "legal", "2026-03-02 00:00:00")]
# (order_id, shop_customer_id, ordered_at, status, total_amount)
ORDERS = [
    ("O1", "S1", "2026-03-05 12:00:00", "paid", 50.0),  # C1: in the window of the 03-01 send
    ("O2", "S1", "2026-02-28 12:00:00", "paid", 70.0),  # before it
    ("O3", "S1", "2026-03-09 12:00:00", "paid", 90.0),  # after it (window ends 03-09 00:00)
    ("O4", "S1", "2026-03-06 12:00:00", "cancelled", 30.0),  # not revenue
    ("O5", "S2", "2026-03-04 12:00:00", "shipped", 20.0),  # C2, held out
    ("O6", "S1", "2026-03-10 12:00:00", "paid", 15.0),  # C1: in the window of the 03-09 send
]
# (contact_id, sync_id, as_of, customer_id, contact_point, outcome, is_holdout)
HISTORY = [
    ("H1", "s_email", "2026-03-01", "C1", "sent.one@x.org", "ok", False),
    ("H2", "s_email", "2026-03-01", "C2", "held.two@x.org", "held_out", True),
    ("H3", "s_email", "2026-03-01", "C3", "filtered@x.org", "filtered", False),
    ("H4", "s_email", "2026-03-09", "C1", "sent.one@x.org", "ok", False),
    ("H5", "s_email", "2026-03-12", "C1", "sent.one@x.org", "ok", False),  # after as_of
    ("H6", "s_email", "2026-03-10", "C2", "held.two@x.org", "ok", False),  # as_of's own send
]


def _build(tmp: Path, with_history: bool = True) -> duckdb.DuckDBPyConnection:
    warehouse = tmp / "wh.duckdb"
    loaded = "'B1', timestamp '2026-03-10 23:00:00', 'fixture'"
    with duckdb.connect(str(warehouse)) as con:
        for schema in ("raw", "marts", "reference", "activation"):
            con.execute(f"create schema {schema}")
        con.execute(
            "create table raw.consent__events (consent_event_id varchar, contact_point varchar, "
            "contact_point_type varchar, channel varchar, purpose varchar, status varchar, "
            f"captured_at timestamp, expires_at timestamp, source varchar, {META})"
        )
        for row in CONSENT_EVENTS:
            con.execute(
                f"insert into raw.consent__events values (?, ?, ?, ?, ?, ?, ?, null, 'crm', {loaded})",
                [*row[:6], _ts(row[6])],
            )
        con.execute(
            "create table raw.email__engagement (engagement_event_id varchar, email varchar, "
            f"campaign_id varchar, event_type varchar, bounce_type varchar, occurred_at timestamp, {META})"
        )
        for row in ENGAGEMENT:
            con.execute(
                f"insert into raw.email__engagement values (?, ?, ?, ?, ?, ?, {loaded})",
                [*row[:5], _ts(row[5])],
            )
        con.execute(
            "create table raw.consent__erasure_requests (erasure_request_id varchar, "
            f"contact_point varchar, contact_point_type varchar, requested_at timestamp, {META})"
        )
        for row in ERASURES:
            con.execute(
                f"insert into raw.consent__erasure_requests values (?, ?, ?, ?, {loaded})",
                [*row[:3], _ts(row[3])],
            )
        con.execute(
            "create table raw.consent__suppressions (suppression_id varchar, contact_point varchar, "
            "contact_point_type varchar, channel varchar, reason varchar, suppressed_at timestamp, "
            f"updated_at timestamp, {META})"
        )
        for row in SUPPRESSIONS:
            con.execute(
                f"insert into raw.consent__suppressions values (?, ?, ?, ?, ?, ?, ?, {loaded})",
                [*row[:5], _ts(row[5]), _ts(row[5])],
            )
        con.execute(
            "create table raw.shop__orders (order_id varchar, shop_customer_id varchar, "
            "ordered_at timestamp, status varchar, currency varchar, total_amount decimal(18, 2), "
            "discount_amount decimal(18, 2), shipping_country_code varchar, "
            "shipping_address_line1 varchar, shipping_address_line2 varchar, shipping_city varchar, "
            f"shipping_postal_code varchar, updated_at timestamp, {META})"
        )
        for order_id, customer, at, status, amount in ORDERS:
            con.execute(
                "insert into raw.shop__orders values (?, ?, ?, ?, 'USD', ?, 0, 'US', null, null, "
                f"null, null, ?, {loaded})",
                [order_id, customer, _ts(at), status, amount, _ts(at)],
            )
        con.execute(
            "create table reference.phone_numbers (raw_text varchar, region varchar, e164 varchar)"
        )
        con.execute(
            "insert into reference.phone_numbers values ('+15550000001', '', '+15550000001')"
        )
        con.execute(
            "create table marts.customer_id_map (source varchar, entity varchar, "
            "source_record_id varchar, record_key varchar, customer_id varchar, as_of date)"
        )
        con.execute(
            "insert into marts.customer_id_map values "
            "('shop', 'customers', 'S1', 'r|shop:customers:S1', 'C1', date '2026-03-10'), "
            "('shop', 'customers', 'S2', 'r|shop:customers:S2', 'C2', date '2026-03-10'), "
            "('shop', 'customers', 'S3', 'r|shop:customers:S3', 'C3', date '2026-03-10')"
        )
        if with_history:
            con.execute(
                "create table activation.contact_history (contact_id varchar, sync_id varchar, "
                "segment_name varchar, as_of date, customer_id varchar, channel varchar, "
                "contact_point varchar, "
                "outcome varchar, is_holdout boolean, recorded_at timestamp)"
            )
            for cid, sync, as_of, customer, cp, outcome, holdout in HISTORY:
                con.execute(
                    "insert into activation.contact_history values "
                    "(?, ?, 'seg', ?, ?, 'email', ?, ?, ?, ?)",
                    [cid, sync, dt.date.fromisoformat(as_of), customer, cp, outcome, holdout,
                     _ts(f"{as_of} 23:59:59") + dt.timedelta(hours=2)],
                )  # fmt: skip
    result = scratch_dbt.run(
        warehouse, ["build", "--quiet", "--select", MODELS], as_of=AS_OF, log_path=tmp / "logs"
    )
    if result.returncode:
        raise RuntimeError(result.stdout + result.stderr)
    return duckdb.connect(str(warehouse), read_only=True)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    con = _build(tmp_path_factory.mktemp("closed_loop"))
    yield con
    con.close()


def _consent(con, contact_point: str, channel: str = "email", purpose: str = "marketing"):
    rows = con.execute(
        "select consent_status, capture_source, is_consented, is_erased "
        "from marts.consent_state where contact_point = ? and channel = ? and purpose = ?",
        [contact_point, channel, purpose],
    ).fetchall()
    assert len(rows) <= 1
    return rows[0] if rows else None


def test_an_unsubscribe_after_a_grant_revokes_email_marketing_the_same_night(warehouse):
    assert _consent(warehouse, "unsub@x.org") == ("revoked", "email_unsubscribe", False, False)
    # an unsubscribe withdraws marketing only: the address's product updates stay
    assert _consent(warehouse, "unsub@x.org", purpose="product_updates") == (
        "granted", "crm", True, False,
    )  # fmt: skip


def test_a_spam_complaint_revokes_email_marketing_the_same_night(warehouse):
    assert _consent(warehouse, "spam@x.org") == ("revoked", "email_spam_complaint", False, False)
    # a complaint is about marketing mail: the address's other purposes stay as they were
    assert _consent(warehouse, "spam@x.org", purpose="product_updates") == (
        "granted", "crm", True, False,
    )  # fmt: skip


def test_a_later_regrant_wins_over_an_unsubscribe(warehouse):
    assert _consent(warehouse, "regrant@x.org") == ("granted", "crm", True, False)


def test_an_unsubscribe_after_as_of_is_not_seen_yet(warehouse):
    assert _consent(warehouse, "later@x.org") == ("granted", "crm", True, False)


def test_an_unsubscribe_without_a_consent_record_is_a_revoked_row(warehouse):
    assert _consent(warehouse, "none@x.org") == ("revoked", "email_unsubscribe", False, False)


def test_a_hard_bounce_revokes_every_email_purpose_and_a_soft_bounce_nothing(warehouse):
    assert _consent(warehouse, "hard@x.org") == ("revoked", "email_hard_bounce", False, False)
    assert _consent(warehouse, "hard@x.org", purpose="product_updates") == (
        "revoked", "email_hard_bounce", False, False,
    )  # fmt: skip
    assert _consent(warehouse, "soft@x.org") == ("granted", "crm", True, False)


def test_an_email_erasure_without_a_consent_record_still_shows_in_consent_state(warehouse):
    """customer_360 marks a customer erased from consent_state's is_erased (all channels): the
    erased address needs a row there even when it never had a consent record."""
    assert _consent(warehouse, "erased@x.org") == ("revoked", "erasure_request", False, True)


def test_suppression_still_applies_per_contact_point_and_channel(warehouse):
    assert _consent(warehouse, "+15550000001", "sms")[2] is False
    (suppressed,) = warehouse.execute(
        "select is_suppressed from marts.consent_state where contact_point = '+15550000001'"
    ).fetchone()
    assert suppressed is True


def _outcomes(con) -> dict[str, tuple]:
    return {
        row[0]: row[1:]
        for row in con.execute(
            "select contact_id, is_holdout, is_delivered, is_opened, is_clicked, has_ordered, "
            "order_count, cast(order_revenue as double), is_window_complete "
            "from marts.campaign_outcomes"
        ).fetchall()
    }


def test_campaign_outcomes_joins_a_send_to_an_open_and_an_order_in_its_window(warehouse):
    outcomes = _outcomes(warehouse)
    # one row per ok / held_out send of a night before as_of: not the filtered one, not the
    # future one, not as_of's own (written after dbt; a rerun of as_of would see it)
    assert set(outcomes) == {"H1", "H2", "H4"}
    # delivered and opened in the window; the click after it and the open before it do not count;
    # O1 in the window, O2 before, O3 after, O4 cancelled
    assert outcomes["H1"] == (False, True, True, False, True, 1, 50.0, True)
    # the holdout: nothing sent, but its order in the window counts (the lift's control)
    assert outcomes["H2"] == (True, False, False, False, True, 1, 20.0, True)
    # a send whose window is still open at as_of: O6 so far
    assert outcomes["H4"] == (False, False, False, False, True, 1, 15.0, False)


def test_campaign_outcomes_is_empty_on_a_warehouse_that_never_synced(tmp_path):
    with _build(tmp_path, with_history=False) as con:
        assert con.execute("select count(*) from marts.campaign_outcomes").fetchone() == (0,)
