"""Platform-side unsubscribes become consent events of the same night: a member unsubscribed at
the local Mailchimp server lands as a revoked consent__events row that the contract accepts,
once (the cursor per sync keeps it from landing twice)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import duckdb

from orchestration.activation.destinations.rows import make_row
from orchestration.contracts.model import all_source_contracts
from orchestration.ingest.wap import stage_batch
from orchestration.privacy.platform_unsubscribes import collect, cursor
from tests.servers.mailchimp import MailchimpServer
from tests.unit.test_platform_destinations import KEY, _mailchimp, _mc_rows

SYNC = SimpleNamespace(name="mc__t", destination="mailchimp", identifier="email",
                       channel="email", purpose="marketing")  # fmt: skip
AS_OF = dt.date(2026, 11, 21)
# the platform-side opt-outs happen on the night's day, not at the test's clock: a suite that
# ran across midnight otherwise saw them after the night's as_of
OPTED_OUT = dt.datetime(2026, 11, 21, 12, 30, tzinfo=dt.UTC)


def test_a_platform_unsubscribe_lands_once_as_a_revoked_consent_event(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    landing = tmp_path / "landing"
    with MailchimpServer(KEY, "a1b2c3") as server:
        client = _mailchimp(server)
        client.send(_mc_rows(10))
        server.unsubscribe("p7@example.org", at=OPTED_OUT)
        got = collect(con, [SYNC], landing, AS_OF, "run-one", clients=lambda s: _mailchimp(server))
        assert got.events == {"mc__t": 1} and got.file is not None
        assert got.file.parent == landing / "consent" / "events" / f"dt={AS_OF.isoformat()}"
        rows = list(csv.DictReader(got.file.open()))
        assert [(r["contact_point"].lower(), r["channel"], r["purpose"], r["status"])
                for r in rows] == [("p7@example.org", "email", "marketing", "revoked")]  # fmt: skip
        assert rows[0]["consent_event_id"].startswith("platform_unsubscribe:mailchimp:")
        assert cursor(con, "mc__t") is not None
        # nothing new at the platform: nothing lands again
        again = collect(
            con, [SYNC], landing, AS_OF, "run-two", clients=lambda s: _mailchimp(server)
        )
        assert again.total == 0 and again.file is None
    contract = next(c for c in all_source_contracts() if c.id == "consent__events")
    for schema in ("audit", "raw", "quarantine", "staging"):
        con.execute(f"create schema if not exists {schema}")
    batch = stage_batch(con, contract, landing, AS_OF, "run-stage")
    assert (batch.loaded, batch.quarantined) == (1, 0)


def test_an_opt_out_after_the_nights_as_of_waits_for_its_night(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    landing = tmp_path / "landing"
    with MailchimpServer(KEY, "a1b2c3") as server:
        _mailchimp(server).send(_mc_rows(3))
        server.unsubscribe("p1@example.org", at=OPTED_OUT)
        early = AS_OF - dt.timedelta(days=1)
        before = collect(con, [SYNC], landing, early, "r1", clients=lambda s: _mailchimp(server))
        cursor_before = cursor(con, "mc__t")
        tonight = collect(con, [SYNC], landing, AS_OF, "r2", clients=lambda s: _mailchimp(server))
    assert before.total == 0 and before.file is None and cursor_before is None
    assert tonight.total == 1


def test_a_platform_that_fails_keeps_its_cursor(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))

    def broken(sync):
        raise ConnectionError("down")

    got = collect(con, [SYNC], tmp_path / "landing", AS_OF, "run", clients=broken)
    assert got.failed == {"mc__t": "ConnectionError"} and got.file is None
    assert cursor(con, "mc__t") is None


def test_a_sync_keyed_by_customer_id_revokes_the_persons_email(tmp_path: Path):
    from orchestration.activation.destinations import klaviyo
    from tests.servers.klaviyo import KlaviyoServer

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    con.execute("create table marts.customer_360 (customer_id varchar, email varchar)")
    con.execute("insert into marts.customer_360 values ('C1', 'ann@example.org'), "
                "('C2', 'bob@example.org')")  # fmt: skip
    sync = SimpleNamespace(name="kl__t", destination="klaviyo", identifier="customer_id",
                           channel="email", purpose="marketing")  # fmt: skip
    with KlaviyoServer() as server:
        config = klaviyo.KlaviyoConfig(list_id="Y6nRLr", endpoint=server.url, backoff_seconds=0,
                                       poll_seconds=0)  # fmt: skip
        client = klaviyo.KlaviyoClient(config, "kl__t", "pk_test")
        rows = [make_row("kl__t", c, "upsert", {"email": e}) for c, e in
                (("C1", "ann@example.org"), ("C2", "bob@example.org"), ("C9", "x@example.org"))]  # fmt: skip
        client.send(rows)
        server.suppress("C2", at=OPTED_OUT)
        server.suppress("C9", at=OPTED_OUT)  # no longer in customer_360: nobody to revoke
        got = collect(con, [sync], tmp_path / "landing", AS_OF, "run", clients=lambda s: client)
    rows = list(csv.DictReader(got.file.open()))
    assert [(r["contact_point"], r["contact_point_type"], r["status"]) for r in rows] == [
        ("bob@example.org", "email", "revoked")
    ]
    assert rows[0]["consent_event_id"].startswith("platform_unsubscribe:klaviyo:")
