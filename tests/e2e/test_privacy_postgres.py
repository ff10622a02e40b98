"""The privacy steps on a real Postgres (orchestration/privacy): erasure and the retry of its
destination deletes, and platform unsubscribes, give what they give on DuckDB — the same rows
erased from raw, quarantine, the staging batch tables, the phone lookup and the warehouse's other
tables, the same pseudonyms, tombstones, receipts and counts — and a re-delivered file of the
erased person is dropped at ingestion on both engines."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestration.engine.postgres import PostgresConnection
from tests.e2e.pg import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]

AS_OF = dt.date(2026, 11, 21)
NEXT = AS_OF + dt.timedelta(days=1)
# Columns holding when a step ran (now()), not what it did: left out of the comparison.
WALL_CLOCK = {"_loaded_at", "published_at", "staged_at", "processed_at"}
WALL_CLOCK_BY_TABLE = {"audit.erasure_tombstones": {"created_at"}}


@pytest.fixture(autouse=True)
def _home(monkeypatch, tmp_path):
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_ERASURE_KEY", "e2e-privacy-key-" + "k" * 32)
    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "tmp"))


def _contact(contact_id: str, email: str | None, phone: str | None = None,
             mobile: str | None = None, first: str = "Ann") -> dict:  # fmt: skip
    return {
        "contact_id": contact_id, "account_id": None, "first_name": first, "last_name": "Doe",
        "email": email, "phone": phone, "mobile_phone": mobile, "date_of_birth": "1980-01-02",
        "address_line1": "1 Main St", "address_line2": None, "city": "Springfield",
        "postal_code": "62701", "region": None, "country_code": "US", "time_zone": None,
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-11-01T10:00:00Z",
        "is_deleted": "false",
    }  # fmt: skip


def _write(landing: Path, source: str, entity: str, day: dt.date, name: str, rows: list[dict]):
    folder = landing / source / entity / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    if name.endswith(".jsonl"):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return
    with (folder / name).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _landing(root: Path) -> None:
    """The night's landing files: Gone (C9, erased by email; a household landline shared with
    Kept, C1), Phoned (C7, erased by phone), two people who stay, their shop records, orders,
    consent events (one of Gone's quarantined) and the two erasure requests."""
    _write(root, "crm", "contacts", AS_OF, "contacts.jsonl", [
        _contact("C9", "Gone.Person@example.org", "+1 415 555 0100", "(415) 555-0199", "Gone"),
        _contact("C1", "keep@example.org", "+1 415 555 0100", first="Kept"),
        _contact("C7", "phoned@example.org", mobile="+1 415 555 0177", first="Phoned"),
        _contact("C5", "house@example.org", "+1 415 555 0123", first="Stays"),
    ])  # fmt: skip
    shop = {"first_name": "X", "last_name": "Y", "country_code": "US", "address_line1": "2 Elm",
            "address_line2": None, "city": "Springfield", "postal_code": "62701",
            "created_at": "2026-02-01T00:00:00Z", "updated_at": "2026-11-02T00:00:00Z"}  # fmt: skip
    _write(root, "shop", "customers", AS_OF, "customers.jsonl", [
        {"shop_customer_id": "S9", "email": None, "phone": "(415) 555-0199", **shop},
        {"shop_customer_id": "S1", "email": "keep@example.org", "phone": None, **shop},
    ])  # fmt: skip
    order = {"ordered_at": "2026-11-03T00:00:00Z", "status": "paid", "currency": "USD",
             "total_amount": "12.50", "discount_amount": "0", "shipping_country_code": "US",
             "shipping_address_line1": "2 Elm", "shipping_address_line2": None,
             "shipping_city": "Springfield", "shipping_postal_code": "62701",
             "updated_at": "2026-11-03T00:00:00Z"}  # fmt: skip
    _write(root, "shop", "orders", AS_OF, "orders.jsonl", [
        {"order_id": "O1", "shop_customer_id": "S9", **order},
        {"order_id": "O2", "shop_customer_id": "S1", **order},
        {"order_id": "O3", "shop_customer_id": "S9", **order, "currency": "usd"},  # quarantined
    ])  # fmt: skip
    event = {"channel": "email", "purpose": "marketing", "status": "granted",
             "captured_at": "2026-11-05T00:00:00Z", "expires_at": None, "source": "web_form"}  # fmt: skip
    _write(root, "consent", "events", AS_OF, "events.jsonl", [
        {"consent_event_id": "EV1", "contact_point": "gone.person@example.org",
         "contact_point_type": "email", **event},
        {"consent_event_id": "EV2", "contact_point": "keep@example.org",
         "contact_point_type": "email", **event},
        {"consent_event_id": "EV3", "contact_point": "GONE.PERSON@example.org",
         "contact_point_type": "email", **event, "status": "maybe"},  # quarantined
        {"consent_event_id": "EV4", "contact_point": "+1 415 555 0177",
         "contact_point_type": "phone", **event, "channel": "sms"},
        {"consent_event_id": "EV5", "contact_point": "+1 415 555 0100",
         "contact_point_type": "phone", **event, "channel": "sms"},  # the household landline
    ])  # fmt: skip
    _write(root, "consent", "erasure_requests", AS_OF, "requests.csv", [
        {"erasure_request_id": "ER1", "contact_point": "gone.person@EXAMPLE.org",
         "contact_point_type": "email", "requested_at": "2026-11-21T09:00:00Z"},
        {"erasure_request_id": "ER2", "contact_point": "+1 (415) 555-0177",
         "contact_point_type": "phone", "requested_at": "2026-11-21T10:00:00Z"},
    ])  # fmt: skip


CONTRACTS = ("crm__contacts", "shop__customers", "shop__orders", "consent__events",
             "consent__erasure_requests")  # fmt: skip


def _built_tables(con) -> None:
    """What dbt and the activation steps would have built, by hand (DuckDB's SQL on both)."""
    from orchestration.activation.diff import STATE_DDL

    con.execute(
        "create table marts.customer_id_map (source varchar, entity varchar, "
        "source_record_id varchar, record_key varchar, customer_id varchar)"
    )
    con.execute(
        "insert into marts.customer_id_map values ('crm', 'contacts', 'C9', 'k9', 'CUST9'), "
        "('shop', 'customers', 'S9', 'ks9', 'CUST9'), ('crm', 'contacts', 'C1', 'k1', 'CUST1'), "
        "('shop', 'customers', 'S1', 'ks1', 'CUST1'), ('crm', 'contacts', 'C7', 'k7', 'CUST7'), "
        "('crm', 'contacts', 'C5', 'k5', 'CUST5')"
    )
    con.execute(
        "create table marts.customer_360 (customer_id varchar, email varchar, phone varchar, "
        "first_name varchar, orders integer)"
    )
    con.execute(
        "insert into marts.customer_360 values "
        "('CUST9', 'gone.person@example.org', '+14155550199', 'Gone', 2), "
        "('CUST1', 'keep@example.org', '+14155550111', 'Kept', 1), "
        "('CUST7', 'phoned@example.org', '+14155550177', 'Phoned', 0), "
        "('CUST5', 'house@example.org', '+14155550123', 'Stays', 0)"
    )
    # an incremental model keyed by a source id only, and a note holding an email
    con.execute(
        "create table intermediate.int_shop_activity (shop_customer_id varchar, note text, "
        "amount double)"
    )
    con.execute(
        "insert into intermediate.int_shop_activity values ('S9', 'order', 12.5), "
        "(' S1 ', 'order', 3.0), ('S2', ' Gone.Person@Example.org ', 1.0), "
        "('S3', 'phoned@example.org', 2.0), ('S4', 'nobody@example.org', 4.0)"
    )
    con.execute(
        "create table activation.contact_history (contact_id varchar, customer_id varchar, "
        "contact_point varchar, outcome varchar)"
    )
    con.execute(
        "insert into activation.contact_history values "
        "('H1', 'CUST9', 'gone.person@example.org', 'ok'), ('H2', 'CUST9', '+14155550199', 'ok'), "
        "('H3', 'CUST1', 'keep@example.org', 'ok'), ('H4', 'CUST7', '+14155550177', 'bounced'), "
        "('H5', 'CUST1', '+14155550100', 'ok')"
    )
    con.execute(STATE_DDL)
    # a sync no longer defined holds Gone: its delete cannot be sent (error, then retried); a
    # file drop holds Phoned: acknowledged as the file's rewrite, its state and plan rows go
    con.execute(
        "insert into activation.sync_state (sync_id, identifier, status, attempts, "
        "created_by_sync, updated_as_of, customer_id, generation) values "
        "('gone_sync__e2e', 'gone.person@example.org', 'ok', 1, true, date '2026-11-20', "
        "'CUST9', 1), "
        "('gone_sync__e2e', 'keep@example.org', 'ok', 1, true, date '2026-11-20', 'CUST1', 1), "
        "('file_drop__vip_sms', '+14155550177', 'ok', 1, true, date '2026-11-20', 'CUST7', 1), "
        "('file_drop__vip_sms', '+14155550111', 'ok', 1, true, date '2026-11-20', 'CUST1', 1)"
    )
    con.execute(
        "insert into activation.sync_plan (sync_id, plan_id, as_of, identifier, customer_id, "
        "action) values ('file_drop__vip_sms', 'p1', date '2026-11-20', '+14155550177', "
        "'CUST7', 'create'), ('file_drop__vip_sms', 'p1', date '2026-11-20', '+14155550111', "
        "'CUST1', 'create')"
    )


# The landing files' stat signatures: a cache of the file system (inodes, times), whose rows
# depend on when each engine's night read a file (git's racy-clean rule), not on its data.
FILE_SYSTEM_CACHE = "audit.landing_file_signatures"


def _tables(con) -> list[str]:
    rows = con.execute(
        "select cast(table_schema as varchar), cast(table_name as varchar) "
        "from information_schema.tables where table_type = 'BASE TABLE' "
        "and table_schema in ('raw', 'quarantine', 'reference', 'staging', 'intermediate', "
        "'marts', 'activation', 'audit', 'privacy')"
    ).fetchall()
    return sorted(f"{s}.{n}" for s, n in rows if f"{s}.{n}" != FILE_SYSTEM_CACHE)


def _value(v: object) -> object:
    """One cell as both engines can be compared: JSON text parsed (Postgres' driver parses a
    json column, DuckDB's hands over text), an aware timestamp in UTC without its zone."""
    if isinstance(v, str) and v[:1] in "[{":
        try:
            v = json.loads(v)
        except ValueError:
            return v
    if isinstance(v, dict):  # a staged batch: its files' stat (when they were read) left out
        return {k: x for k, x in v.items() if k != "file_signature"}
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(v, float):
        return round(v, 9)
    return v


def _rows(con, table: str) -> list[tuple]:
    cur = con.execute(f"select * from {table} limit 0")
    skip = WALL_CLOCK | WALL_CLOCK_BY_TABLE.get(table, set())
    names = [d[0] for d in cur.description if d[0] not in skip]
    cur.fetchall()
    rows = con.execute(f"select {', '.join(names)} from {table}").fetchall()
    out = sorted(
        (tuple(_value(v) for v in r) for r in rows),
        key=lambda r: json.dumps(r, default=str, sort_keys=True),
    )
    return [tuple(names), *out]  # the column names first


def _snapshot(con) -> dict[str, list[tuple]]:
    return {t: _rows(con, t) for t in _tables(con)}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


def _night(con, landing: Path, day: dt.date, run_id: str, contracts=CONTRACTS) -> dict:
    from orchestration.contracts.model import source_contract
    from orchestration.ingest.wap import publish_batch, stage_batch

    out = {}
    for cid in contracts:
        contract = source_contract(cid)
        batch = stage_batch(con, contract, landing, day, run_id)
        published = publish_batch(con, contract, batch, run_id, landing)
        out[cid] = (batch.extracted, batch.loaded, batch.quarantined, batch.erased, published)
    return out


def test_erasure_gives_the_same_warehouse_files_and_receipts_on_postgres(pg, tmp_path):
    """Two requests (one by email reaching the person's shop record through the identity map,
    one by phone) on a warehouse ingested from the same landing files on each engine: the same
    rows deleted and pseudonymised everywhere, the same receipts, tombstones and counts, the
    same files rewritten; the retry of the delete a destination could not take ends the same;
    a re-delivered record of the person is dropped at ingestion on both."""
    from orchestration.identity import phones
    from orchestration.privacy.erasure import erase_pending
    from orchestration.privacy.retry import retry_pending
    from orchestration.warehouse import ensure_schemas, warehouse

    template = tmp_path / "template"
    _landing(template)
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"

    def run(con) -> dict:
        # the same paths on both engines: the ledger and the receipts name them
        for folder in (landing, outbox):
            shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(template, landing)
        outbox.mkdir()
        (outbox / "drop.csv").write_text("customer_id,first_name\nCUST9,Gone\nCUST1,Kept\n")
        ensure_schemas(con)
        ingested = _night(con, landing, AS_OF, "night1")
        phones.refresh(con, AS_OF.isoformat())
        _built_tables(con)
        before = _snapshot(con)
        summary = erase_pending(con, AS_OF, "erase1", landing=landing, outbox=outbox)
        retried = retry_pending(con, attempts=2)
        again = erase_pending(con, AS_OF, "erase2", landing=landing, outbox=outbox)
        after = _snapshot(con)
        files = {"landing": _files(landing), "outbox": _files(outbox)}
        # the person's records delivered again the next night (and a new person)
        _write(landing, "crm", "contacts", NEXT, "again.jsonl", [
            _contact("C9", "gone.person@example.org", first="Gone"),
            _contact("C2", "new@example.org", first="New"),
        ])  # fmt: skip
        _write(landing, "consent", "events", NEXT, "again.jsonl", [
            {"consent_event_id": "EV9", "contact_point": "+1 415 555 0177",
             "contact_point_type": "phone", "channel": "sms", "purpose": "marketing",
             "status": "granted", "captured_at": "2026-11-22T01:00:00Z", "expires_at": None,
             "source": "web_form"},
            {"consent_event_id": "EV8", "contact_point": "new@example.org",
             "contact_point_type": "email", "channel": "email", "purpose": "marketing",
             "status": "granted", "captured_at": "2026-11-22T01:00:00Z", "expires_at": None,
             "source": "web_form"},
        ])  # fmt: skip
        redelivered = _night(con, landing, NEXT, "night2", ("crm__contacts", "consent__events"))
        return {
            "ingested": ingested, "before": before, "summary": summary, "retried": retried,
            "again": again, "after": after, "files": files, "redelivered": redelivered,
            "final": _snapshot(con),
        }  # fmt: skip

    with warehouse(tmp_path / "wh.duckdb") as duck:
        on_duck = run(duck)
    on_pg = run(pg)

    # the night did what it was written to do (DuckDB, the reference)
    after = on_duck["after"]
    assert on_duck["summary"].requests == 2 and on_duck["summary"].destinations_pending == 1
    assert on_duck["again"].requests == 0
    assert (on_duck["retried"].receipts, on_duck["retried"].failed) == (1, 1)
    assert [r[0] for r in after["raw.crm__contacts"][1:]] == ["C1", "C5"]
    ids = {tuple(r[:1]) for r in after["raw.shop__customers"][1:]}
    assert ids == {("S1",)}
    assert [r[0] for r in after["raw.shop__orders"][1:]] == ["O2"]
    assert [r[0] for r in after["quarantine.shop__orders"][1:]] == []
    # the household's landline reaches contact-point rows (its consent event), not Kept's record
    assert sorted(r[0] for r in after["raw.consent__events"][1:]) == ["EV2"]
    assert after["quarantine.consent__events"][1:] == []
    assert after["raw.consent__erasure_requests"][1:] == []
    texts = {r[0] for r in after["reference.phone_numbers"][1:]}
    assert "+1 415 555 0100" in texts and "(415) 555-0199" not in texts
    assert "+1 415 555 0177" not in texts
    assert [r[0] for r in after["marts.customer_360"][1:]] == ["CUST1", "CUST5"]
    assert sorted(r[1] for r in after["intermediate.int_shop_activity"][1:]) == [
        "nobody@example.org", "order",
    ]  # fmt: skip
    history = after["activation.contact_history"]
    assert len(history) == 6 and all(
        r[1].startswith("erased:") for r in history[1:] if r[0] in ("H1", "H2", "H4")
    )
    receipts = {r[0]: r for r in after["audit.erasure_receipts"][1:]}
    names = after["audit.erasure_receipts"][0]
    status = names.index("status")
    assert {k: r[status] for k, r in receipts.items()} == {
        "ER1": "destinations_failed", "ER2": "done",
    }  # fmt: skip
    state = {(r[0], r[1]) for r in after["activation.sync_state"][1:]}
    assert state == {("gone_sync__e2e", "gone.person@example.org"),
                     ("gone_sync__e2e", "keep@example.org"),
                     ("file_drop__vip_sms", "+14155550111")}  # fmt: skip
    assert [r[3] for r in after["activation.sync_plan"][1:]] == ["+14155550111"]
    assert on_duck["files"]["outbox"]["drop.csv"] == b"customer_id,first_name\nCUST1,Kept\n"
    crm = on_duck["redelivered"]["crm__contacts"]
    assert crm[3] == 1 and crm[1] == 1  # C9 erased at ingestion, C2 loaded
    assert on_duck["redelivered"]["consent__events"][3] == 1  # the erased phone's event
    assert on_duck["before"] != after

    # and Postgres did the same
    assert on_pg["ingested"] == on_duck["ingested"]
    assert on_pg["summary"] == on_duck["summary"]
    assert on_pg["retried"] == on_duck["retried"]
    assert on_pg["again"] == on_duck["again"]
    assert on_pg["files"] == on_duck["files"]
    assert on_pg["redelivered"] == on_duck["redelivered"]
    for stage in ("before", "after", "final"):
        assert sorted(on_pg[stage]) == sorted(on_duck[stage]), stage
        for table, rows in on_duck[stage].items():
            assert on_pg[stage][table] == rows, f"{stage}: {table}"


def test_platform_unsubscribes_land_and_move_the_cursor_the_same_on_postgres(pg, tmp_path):
    """A sync keyed by customer_id: the platform's opt-outs become the same consent-events file
    on both engines (contact points from customer_360), and the cursor is kept and moved."""
    from orchestration.privacy.platform_unsubscribes import collect, cursor
    from orchestration.warehouse import ensure_schemas, warehouse

    sync = SimpleNamespace(name="kl__e2e", destination="klaviyo", identifier="customer_id",
                           channel="email", purpose="marketing")  # fmt: skip
    first = dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC)

    class Platform:
        def __init__(self, found):
            self.found = found

        def unsubscribes(self, since):
            return [u for u in self.found if since is None or u.occurred_at > since]

    found = [
        SimpleNamespace(identifier="C1", occurred_at=first, channel=None),
        SimpleNamespace(identifier="C2", occurred_at=first + dt.timedelta(hours=2), channel=None),
        SimpleNamespace(identifier="C9", occurred_at=first + dt.timedelta(hours=1), channel=None),
        SimpleNamespace(identifier="C3", occurred_at=first + dt.timedelta(days=3), channel=None),
    ]

    def run(con, landing: Path) -> tuple:
        ensure_schemas(con)
        con.execute("create table marts.customer_360 (customer_id varchar, email varchar)")
        con.execute("insert into marts.customer_360 values ('C1', 'ann@example.org'), "
                    "('C2', 'bob@example.org'), ('C3', 'cy@example.org')")  # fmt: skip
        got = collect(con, [sync], landing, AS_OF, "run-1", clients=lambda s: Platform(found))
        moved = cursor(con, sync.name)
        later = collect(con, [sync], landing, NEXT + dt.timedelta(days=2), "run-2",
                        clients=lambda s: Platform(found))  # fmt: skip
        return (
            got.events, got.file.read_text() if got.file else None, moved,
            later.events, later.file.read_text() if later.file else None,
            cursor(con, sync.name),
        )  # fmt: skip

    with warehouse(tmp_path / "wh.duckdb") as duck:
        on_duck = run(duck, tmp_path / "landing-duck")
    on_pg = run(pg, tmp_path / "landing-pg")
    assert on_duck[0] == {"kl__e2e": 2}  # C9 is not in customer_360: nobody to revoke
    assert "bob@example.org" in on_duck[1] and "cy@example.org" not in on_duck[1]
    assert on_duck[2] == first + dt.timedelta(hours=2)  # C3's opt-out waits for its night
    assert on_duck[3] == {"kl__e2e": 1} and "cy@example.org" in on_duck[4]
    assert on_pg == on_duck


def test_the_privacy_assets_run_in_dagster_with_the_warehouse_on_postgres(
    pg_server: PostgresServer, tmp_path, monkeypatch
):
    """C360_DBT_TARGET=postgres: the nightly's platform unsubscribes and erasure assets open the
    Postgres warehouse (never the DuckDB file) and carry out the night's requests there."""
    import dagster as dg

    from orchestration.defs.privacy.erasure import erasure
    from orchestration.defs.privacy.platform_unsubscribes import platform_unsubscribes
    from orchestration.defs.resources import Warehouse
    from orchestration.identity import phones
    from orchestration.warehouse import ensure_schemas

    db = pg_server.create_database("privacy_assets")
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    for key, value in {
        "C360_DBT_TARGET": "postgres", "C360_PG_HOST": db.host, "C360_PG_PORT": str(db.port),
        "C360_PG_USER": db.user, "C360_PG_PASSWORD": db.password, "C360_PG_DATABASE": db.dbname,
        "C360_OUTBOX_DIR": str(outbox), "DAGSTER_HOME": str(tmp_path / "dh"),
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    _landing(landing)
    outbox.mkdir()
    with PostgresConnection.connect(db.dsn) as con:
        ensure_schemas(con)
        _night(con, landing, AS_OF, "night1")
        phones.refresh(con, AS_OF.isoformat())
        _built_tables(con)
    unused = tmp_path / "unused.duckdb"
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [platform_unsubscribes, erasure],
            resources={"warehouse": Warehouse(path=str(unused), landing_dir=str(landing))},
            partition_key=AS_OF.isoformat(),
            instance=instance,
        )
    assert result.success
    events = result.get_asset_materialization_events()
    done = {m.asset_key.path[-1]: m.metadata for m in (e.materialization for e in events)}
    assert done["erasure"]["requests"].value == 2
    assert done["erasure"]["destinations_pending"].value == 1
    assert done["platform_unsubscribes"]["events"].value == 0  # no sync reports opt-outs
    assert not unused.exists()
    with PostgresConnection.connect(db.dsn) as con:
        assert con.execute(
            "select request_id, status from audit.erasure_receipts order by request_id"
        ).fetchall() == [("ER1", "destinations_pending"), ("ER2", "done")]
        assert con.execute(
            "select contact_id from raw.crm__contacts order by contact_id"
        ).fetchall() == [("C1",), ("C5",)]
