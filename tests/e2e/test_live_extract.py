"""Live mode of the extractor against real systems: the CRM in a real Postgres server
(tests/e2e/pg.py) and the shop HTTP API (demo/live_shop.py) on a real socket.

Each extraction goes through the same write-audit-publish path as file mode (stage → gate →
publish). Proven here: rows whose updated_at equals the published cursor, a transaction that
commits late, soft deletes, pages fetched and Retry-After honoured (from the server's request log),
the cursor moving only on publish, and file mode and live mode landing the same raw rows.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg2
import pytest

from demo.generator import generate
from demo.live_crm import create_table_sql, load_crm
from demo.live_shop import ShopApiServer, ShopStore, load_landing
from orchestration.contracts.gx_suite import SuiteOutcome
from orchestration.contracts.model import Contract, source_contract
from orchestration.extract.live import extract_to_landing, published_cursor
from orchestration.ingest.gate import evaluate_gate
from orchestration.ingest.wap import publish_batch, stage_batch
from orchestration.warehouse import connect
from tests.e2e.pg import PgDatabase, PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]

AS_OF = dt.date(2026, 11, 21)
CONTACTS = source_contract("crm__contacts")
T0 = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


@dataclass
class Home:
    root: Path
    landing: Path
    con: duckdb.DuckDBPyConnection


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "tmp"))
    con = connect(tmp_path / "warehouse.duckdb")
    yield Home(tmp_path, tmp_path / "landing", con)
    con.close()


@pytest.fixture
def crm_db(pg_server: PostgresServer, monkeypatch, request) -> PgDatabase:
    """A fresh CRM database (empty contacts table) per test; live mode configured by env."""
    name = "crm_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    db = pg_server.create_database(name)
    with db.cursor() as cur:
        cur.execute(create_table_sql(CONTACTS, "public"))
    monkeypatch.setenv("C360_CRM_MODE", "live")
    monkeypatch.setenv("C360_CRM_DSN", db.dsn)
    return db


def ingest(home: Home, contract: Contract, live: bool = True, lookback: int | None = None):
    """One night for one contract: (live extraction →) stage → gate → publish."""
    extraction = {}
    if live:
        extraction = extract_to_landing(
            home.con, contract, home.landing, AS_OF, lookback_seconds=lookback
        ).as_metadata()
    batch = stage_batch(home.con, contract, home.landing, AS_OF, "run", extraction=extraction)
    gate = evaluate_gate(contract, batch, SuiteOutcome(True, [], 0))
    assert gate.passed, gate.failures
    assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated
    published = publish_batch(home.con, contract, batch, "run", home.landing)
    return batch, published


def contact(contact_id: str, updated_at: dt.datetime, **values) -> dict:
    row = {c: None for c in CONTACTS.column_names}
    row |= {
        "contact_id": contact_id,
        "first_name": "Ada",
        "email": f"{contact_id.lower()}@example.org",
        "country_code": "DE",
        "created_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "updated_at": updated_at,
        "is_deleted": False,
    }
    return row | values


def insert(cur, row: dict) -> None:
    cols = ", ".join(row)
    cur.execute(
        f"insert into contacts ({cols}) values ({', '.join(['%s'] * len(row))})", list(row.values())
    )


def raw_versions(home: Home, contact_id: str) -> list[tuple]:
    return home.con.execute(
        "select updated_at, is_deleted, email from raw.crm__contacts where contact_id = ? "
        "order by updated_at",
        [contact_id],
    ).fetchall()


# -- CRM (real Postgres) ----------------------------------------------------------------------


def test_rows_at_the_cursor_are_read_again_and_published_once(home, crm_db):
    with crm_db.cursor() as cur:
        for i, minutes in enumerate((-120, -60, 0)):
            insert(cur, contact(f"C{i + 1}", T0 + dt.timedelta(minutes=minutes)))
    first, published = ingest(home, CONTACTS, lookback=0)
    assert published and (first.extracted, first.loaded) == (3, 3)
    assert published_cursor(home.con, CONTACTS) == T0

    # a new row committed with updated_at == the cursor: a strict `>` cursor would skip it
    with crm_db.cursor() as cur:
        insert(cur, contact("C4", T0))
    second, _ = ingest(home, CONTACTS, lookback=0)
    assert second.extraction["since"] == "2026-11-21T12:00:00Z"
    assert (second.extracted, second.loaded, second.deduplicated) == (2, 1, 1)
    assert second.deduplicated_published == 1  # C3 re-read unchanged, not published twice
    third, published = ingest(home, CONTACTS, lookback=0)
    # the re-read rows are byte for byte the last file: recorded as the same content, not re-read
    assert (third.extracted, third.loaded) == (0, 0) and third.same_content
    assert not published  # nothing new: no empty batch, its file removed, cursor unchanged
    assert len(list((home.landing / "crm" / "contacts").rglob("live-*.jsonl"))) == 2
    counts = home.con.execute(
        "select contact_id, count(*) from raw.crm__contacts group by all order by all"
    ).fetchall()
    assert counts == [("C1", 1), ("C2", 1), ("C3", 1), ("C4", 1)]
    audit = home.con.execute(
        "select extracted, loaded, quarantined, deduplicated from audit.ingestion_audit "
        "where contract_id = 'crm__contacts' order by published_at"
    ).fetchall()
    assert all(e == lo + q + d for e, lo, q, d in audit)


def test_a_transaction_that_commits_late_arrives_exactly_once(home, crm_db):
    with crm_db.cursor() as cur:
        insert(cur, contact("C1", T0 - dt.timedelta(hours=2)))
        insert(cur, contact("C2", T0 - dt.timedelta(hours=1)))
    ingest(home, CONTACTS, lookback=3600)

    late = crm_db.connect(autocommit=False)  # a long transaction: its row is not visible yet
    try:
        with late.cursor() as cur:
            insert(cur, contact("C9", T0 - dt.timedelta(minutes=30)))  # older than what follows
        with crm_db.cursor() as cur:
            cur.execute("update contacts set email = 'new@example.org', updated_at = %s "
                        "where contact_id = 'C1'", [T0])  # fmt: skip
        before_commit, _ = ingest(home, CONTACTS, lookback=3600)
        assert published_cursor(home.con, CONTACTS) == T0  # moved past C9's updated_at
        assert raw_versions(home, "C9") == []
        assert before_commit.loaded == 1  # C1's new version
        late.commit()
    finally:
        late.close()

    after_commit, _ = ingest(home, CONTACTS, lookback=3600)  # window [T0 - 1h, ...) covers C9
    assert after_commit.loaded == 1 and raw_versions(home, "C9")[0][0] == T0.replace(
        tzinfo=None
    ) - dt.timedelta(minutes=30)
    again, _ = ingest(home, CONTACTS, lookback=3600)
    assert again.loaded == 0 and again.extracted == 0 and again.same_content  # same bytes
    assert len(raw_versions(home, "C9")) == 1
    assert len(raw_versions(home, "C1")) == 2  # two real versions, each once


def test_without_lookback_a_late_commit_is_missed(home, crm_db):
    """Why the lookback exists: with 0 the late row lies before the cursor forever."""
    with crm_db.cursor() as cur:
        insert(cur, contact("C1", T0))
    ingest(home, CONTACTS, lookback=0)
    with crm_db.cursor() as cur:
        insert(cur, contact("C9", T0 - dt.timedelta(minutes=1)))  # committed after the run
    missed, _ = ingest(home, CONTACTS, lookback=0)
    assert missed.loaded == 0 and raw_versions(home, "C9") == []
    caught, _ = ingest(home, CONTACTS, lookback=120)
    assert caught.loaded == 1 and len(raw_versions(home, "C9")) == 1


def test_soft_delete_is_carried_through_to_raw(home, crm_db):
    with crm_db.cursor() as cur:
        insert(cur, contact("C1", T0 - dt.timedelta(hours=3)))
        insert(cur, contact("C2", T0 - dt.timedelta(hours=3)))
    ingest(home, CONTACTS)
    with crm_db.cursor() as cur:
        cur.execute("update contacts set is_deleted = true, updated_at = %s "
                    "where contact_id = 'C2'", [T0])  # fmt: skip
    batch, _ = ingest(home, CONTACTS)
    assert batch.loaded == 1
    assert [v[1] for v in raw_versions(home, "C2")] == [False, True]
    # what stg_crm__contacts (latest_version by updated_at) reads: C2 deleted, C1 not
    latest = home.con.execute(
        "select contact_id, is_deleted from raw.crm__contacts qualify row_number() over "
        "(partition by contact_id order by updated_at desc) = 1 order by 1"
    ).fetchall()
    assert latest == [("C1", False), ("C2", True)]


def test_the_cursor_moves_only_when_a_batch_is_published(home, crm_db):
    with crm_db.cursor() as cur:
        insert(cur, contact("C1", T0 - dt.timedelta(hours=3)))
    ingest(home, CONTACTS)
    with crm_db.cursor() as cur:
        insert(cur, contact("C2", T0, email="not-an-email"))  # one bad row of one: share 100 %
    out = extract_to_landing(home.con, CONTACTS, home.landing, AS_OF)
    blocked = stage_batch(home.con, CONTACTS, home.landing, AS_OF, "run", extraction=out.__dict__)
    assert not evaluate_gate(CONTACTS, blocked, SuiteOutcome(True, [], 0)).passed
    # blocked: nothing published, cursor unchanged; the next extraction replaces the file
    assert published_cursor(home.con, CONTACTS) == T0 - dt.timedelta(hours=3)
    with crm_db.cursor() as cur:
        cur.execute("update contacts set email = 'c2@example.org' where contact_id = 'C2'")
    fixed, published = ingest(home, CONTACTS)
    assert published and fixed.extraction["replaced_unpublished"] == 1
    assert (fixed.extracted, fixed.loaded, fixed.quarantined) == (2, 1, 0)
    assert published_cursor(home.con, CONTACTS) == T0
    files = sorted((home.landing / "crm" / "contacts").rglob("live-*.jsonl"))
    assert len(files) == 2  # one per published batch, the blocked one gone


def test_missing_dsn_is_a_clear_error(home, monkeypatch):
    from orchestration.extract.config import LiveConfigError

    monkeypatch.setenv("C360_CRM_MODE", "live")
    monkeypatch.delenv("C360_CRM_DSN", raising=False)
    with pytest.raises(LiveConfigError, match="C360_CRM_DSN"):
        extract_to_landing(home.con, CONTACTS, home.landing, AS_OF)


# -- shop (real HTTP server) ------------------------------------------------------------------


def _orders(n: int, start: dt.datetime) -> ShopStore:
    store = ShopStore()
    for i in range(n):
        updated = (start + dt.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        oid = f"O{i:05d}"
        store.orders[oid] = {
            "order_id": oid,
            "shop_customer_id": f"S{i % 7:03d}",
            "ordered_at": updated,
            "status": "paid",
            "currency": "EUR",
            "total_amount": "10.00",
            "discount_amount": None,
            "shipping_country_code": "DE",
            "shipping_address_line1": f"{i} Hauptstraße",
            "shipping_address_line2": None,
            "shipping_city": "Berlin",
            "shipping_postal_code": "10115",
            "updated_at": updated,
            "line_items": [
                {
                    "order_line_id": f"{oid}-{k}",
                    "product_id": "P0001",
                    "product_name": "Mug",
                    "category": "home",
                    "unit_price": "5.00",
                    "quantity": 1,
                    "updated_at": updated,
                }
                for k in (1, 2)
            ],
        }
    return store


def test_shop_pages_and_retry_after_from_the_request_log(home, monkeypatch):
    orders = source_contract("shop__orders")
    lines = source_contract("shop__order_lines")
    store = _orders(95, T0 - dt.timedelta(days=1))
    with ShopApiServer(store, token="s3cret", rate_limit_every=4, retry_after=1) as server:
        monkeypatch.setenv("C360_SHOP_MODE", "live")
        monkeypatch.setenv("C360_SHOP_API_URL", server.url)
        monkeypatch.setenv("C360_SHOP_API_TOKEN", "s3cret")
        monkeypatch.setenv("C360_SHOP_PAGE_SIZE", "20")
        batch, _ = ingest(home, orders)
        assert batch.loaded == 95
        log = list(server.requests)
        ok = [r for r in log if r.status == 200]
        limited = [r for r in log if r.status == 429]
        assert len(ok) == 5 and [r.rows for r in ok] == [20, 20, 20, 20, 15]  # pages fetched
        assert limited, "the server rate-limited at least once"
        for r in limited:  # the same page asked again, no sooner than Retry-After says
            retry = log[log.index(r) + 1]
            assert retry.query == r.query and retry.status == 200
            assert retry.at - r.at >= r.retry_after - 0.05
        # cursor chain: each page asks from where the previous one ended
        assert "cursor" not in ok[0].query and all("cursor" in r.query for r in ok[1:])
        assert len({r.query.get("cursor") for r in ok}) == 5
        assert {r.query["updated_since"] for r in log} == {"1970-01-01T00:00:00Z"}
        assert {r.query["updated_before"] for r in log} == {"2026-11-22T00:00:00Z"}

        # order lines: the same API read, flattened, each line with its order's id
        line_batch, _ = ingest(home, lines)
        assert line_batch.loaded == 190
        assert (
            home.con.execute(
                "select count(distinct order_id) from raw.shop__order_lines"
            ).fetchone()[0]
            == 95
        )

        # incremental: one order changes at the cursor's instant, one is new; lookback 10 min
        monkeypatch.setenv("C360_SHOP_LOOKBACK_SECONDS", "600")
        cursor = published_cursor(home.con, orders)
        changed = dict(store.orders["O00094"], status="shipped")  # updated_at == cursor
        server.upsert_order(changed)
        new = _orders(1, cursor + dt.timedelta(minutes=5)).orders["O00000"] | {"order_id": "N1"}
        server.upsert_order(new)
        server.clear_log()
        again, _ = ingest(home, orders)
        since = (cursor - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert {r.query["updated_since"] for r in server.requests} == {since}
        assert again.extracted == 12 and again.loaded == 2 and again.deduplicated == 10
        statuses = home.con.execute(
            "select status from raw.shop__orders where order_id = 'O00094' order by _loaded_at"
        ).fetchall()
        assert statuses == [("paid",), ("shipped",)]


def test_shop_refuses_a_wrong_token_and_stages_nothing(home, monkeypatch):
    orders = source_contract("shop__orders")
    with ShopApiServer(_orders(3, T0), token="right", retry_after=1) as server:
        monkeypatch.setenv("C360_SHOP_API_URL", server.url)
        monkeypatch.setenv("C360_SHOP_API_TOKEN", "wrong")
        with pytest.raises(Exception, match="401"):
            extract_to_landing(home.con, orders, home.landing, AS_OF)
        assert not list(home.landing.rglob("*.jsonl*"))  # no partial file left behind
        assert "wrong" not in json.dumps([r.__dict__ for r in server.requests])


# -- file mode and live mode land the same raw tables -----------------------------------------

LIVE_CONTRACTS = ("crm__accounts", "crm__contacts", "shop__customers", "shop__orders",
                  "shop__order_lines")  # fmt: skip


def _table(con: duckdb.DuckDBPyConnection, schema: str, contract: Contract) -> list[tuple]:
    extra = ", _rule_id" if schema == "quarantine" else ""
    cols = ", ".join(f'"{c}"' for c in contract.column_names)
    return con.execute(f"select {cols}{extra} from {schema}.{contract.id} order by all").fetchall()


def test_file_mode_and_live_mode_publish_the_same_raw_rows(tmp_path, pg_server, monkeypatch):
    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "tmp"))
    generated = tmp_path / "generated"
    generate(300, 7, AS_OF, generated / "landing", generated / "truth", progress=None)
    db = pg_server.create_database("crm_equivalence")
    load_crm(db.dsn, generated / "landing")
    files = Home(tmp_path / "f", generated / "landing", connect(tmp_path / "f.duckdb"))
    live = Home(tmp_path / "l", tmp_path / "l" / "landing", connect(tmp_path / "l.duckdb"))
    with ShopApiServer(load_landing(generated / "landing"), rate_limit_every=0) as server:
        monkeypatch.setenv("C360_CRM_DSN", db.dsn)
        monkeypatch.setenv("C360_SHOP_API_URL", server.url)
        monkeypatch.setenv("C360_SHOP_PAGE_SIZE", "200")
        for contract_id in LIVE_CONTRACTS:
            contract = source_contract(contract_id)
            from_files, _ = ingest(files, contract, live=False)
            from_live, _ = ingest(live, contract, live=True)
            assert from_live.loaded == from_files.loaded > 0, contract_id
            assert from_live.quarantined == from_files.quarantined, contract_id
            for schema in ("raw", "quarantine"):
                assert _table(live.con, schema, contract) == _table(files.con, schema, contract), (
                    f"{schema}.{contract_id} differs between file mode and live mode"
                )
            leaked = [
                r[0]
                for r in live.con.execute(
                    "select column_name from information_schema.columns "
                    "where table_name = ? and column_name like '\\_dlt%' escape '\\'",
                    [contract_id],
                ).fetchall()
            ]
            assert not leaked
    files.con.close()
    live.con.close()


def test_crm_loader_keeps_one_row_per_contact(tmp_path, pg_server):
    generated = tmp_path / "generated"
    generate(200, 3, AS_OF, generated / "landing", generated / "truth", progress=None)
    db = pg_server.create_database("crm_loader")
    counts = load_crm(db.dsn, generated / "landing")
    con = psycopg2.connect(db.dsn)
    try:
        with con.cursor() as cur:
            cur.execute(
                "select count(*), count(distinct contact_id), bool_or(is_deleted) from contacts"
            )
            total, distinct, _ = cur.fetchone()
    finally:
        con.close()
    assert total == distinct == counts["crm__contacts"] > 0
