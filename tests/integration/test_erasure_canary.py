"""Erasure that deletes (issue 16, core 3): a canary person planted in every source, run a night,
erased with `c360 erase`, run a night: the canary is in no table of any DuckDB file of the home
(every schema, the whole row as text), in no file under C360_HOME (landing, outbox, logs, reports,
Dagster's storage) — and a re-delivered landing file holding them does not bring them back. The
receipt names every place. The searches can fail: before the erasure they find the canary in
every source table, in the landing files and in the file drop."""

import datetime as dt
import json
import re
import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="erasure_canary")]

FIRST, LAST = "Zephyrine", "Quockwallader"
EMAIL = "Zephyrine.Quockwallader@canary-erase.test"
PHONE_E164, PHONE_US = "+14155550199", "(415) 555-0199"
STREET, POSTCODE = "77 Vellichor Lane", "94110"
# any rendering of the canary: names, the email's domain, the phone's digits, the street
CANARY = re.compile(
    rb"zephyrine|quockwallader|canary-erase|415\D{0,3}555\D{0,3}0199|vellichor", re.IGNORECASE
)
SQL_CANARY = r"zephyrine|quockwallader|canary-erase|415\D{0,3}555\D{0,3}0199|vellichor"
SOURCE_TABLES = (
    "crm__contacts", "shop__customers", "loyalty__members", "shop__orders", "web__events",
    "email__engagement", "consent__events",
)  # fmt: skip
# the source tables whose canary rows hold personal data (web events carry ids only)
PII_TABLES = tuple(t for t in SOURCE_TABLES if t != "web__events")


def _ts(day: dt.date, hour: int) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


def _csv(path, header: list[str], rows: list[dict]) -> None:
    lines = [",".join(header)] + [",".join(str(r.get(h) or "") for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def plant(landing, day: dt.date) -> list:
    """The canary in every source, as new files next to the generator's; returns the files."""

    def folder(source: str, entity: str):
        f = landing / source / entity / f"dt={day.isoformat()}"
        f.mkdir(parents=True, exist_ok=True)
        return f

    ts = _ts(day - dt.timedelta(days=30), 9)
    written = []
    crm = folder("crm", "contacts") / "canary.csv"
    _csv(crm, ["contact_id", "account_id", "first_name", "last_name", "email", "phone",
               "mobile_phone", "date_of_birth", "address_line1", "address_line2", "city",
               "postal_code", "region", "country_code", "time_zone", "created_at", "updated_at",
               "is_deleted"],
         [{"contact_id": "C9999991", "first_name": FIRST, "last_name": LAST, "email": EMAIL,
           "phone": PHONE_E164, "date_of_birth": "1961-04-03", "address_line1": STREET,
           "city": "San Francisco", "postal_code": POSTCODE, "country_code": "US",
           "created_at": ts, "updated_at": ts, "is_deleted": "false"}])  # fmt: skip
    written.append(crm)
    loyalty = folder("loyalty", "members") / "canary.csv"
    _csv(loyalty, ["member_id", "crm_contact_id", "email", "phone", "first_name", "last_name",
                   "birthday", "address_line1", "city", "postal_code", "tier", "points_balance",
                   "joined_at", "updated_at"],
         [{"member_id": "L9999991", "crm_contact_id": "C9999991", "email": EMAIL.upper(),
           "phone": PHONE_US, "first_name": FIRST, "last_name": LAST, "birthday": "1961-04-03",
           "address_line1": STREET, "city": "San Francisco", "postal_code": POSTCODE,
           "tier": "gold", "points_balance": "900", "joined_at": ts, "updated_at": ts}])  # fmt: skip
    written.append(loyalty)
    shop = folder("shop", "customers") / "canary.jsonl"
    shop.write_text(json.dumps({
        "shop_customer_id": "S9999991", "email": EMAIL, "phone": PHONE_US,
        "first_name": FIRST, "last_name": LAST, "country_code": "US", "address_line1": STREET,
        "address_line2": None, "city": "San Francisco", "postal_code": POSTCODE,
        "created_at": ts, "updated_at": ts}) + "\n")  # fmt: skip
    written.append(shop)
    orders = folder("shop", "orders") / "canary.jsonl"
    orders.write_text("".join(json.dumps({
        "order_id": f"O9999999{i}", "shop_customer_id": "S9999991",
        "ordered_at": _ts(day - dt.timedelta(days=10 * i + 5), 12), "status": "delivered",
        "currency": "USD", "total_amount": "5000.00", "discount_amount": "0.00",
        "shipping_country_code": "US", "shipping_address_line1": STREET,
        "shipping_address_line2": None, "shipping_city": "San Francisco",
        "shipping_postal_code": POSTCODE, "updated_at": _ts(day - dt.timedelta(days=10 * i + 5), 12),
    }) + "\n" for i in range(4)))  # fmt: skip
    written.append(orders)
    web = folder("web", "events") / "canary.jsonl"
    web.write_text("".join(json.dumps({
        "event_id": f"E999999999{i}", "anonymous_id": "canary-anon-9f1e", "user_id": "S9999991",
        "event_name": "session_start", "platform": "web", "properties": "{}",
        "occurred_at": _ts(day - dt.timedelta(days=i + 1), 10),
        "received_at": _ts(day - dt.timedelta(days=i + 1), 10)}) + "\n" for i in range(3)))  # fmt: skip
    written.append(web)
    engagement = folder("email", "engagement") / "canary.csv"
    _csv(engagement, ["engagement_event_id", "email", "campaign_id", "event_type", "bounce_type",
                      "occurred_at"],
         [{"engagement_event_id": f"EE99999999{i}{kind[0]}", "email": EMAIL,
           "campaign_id": "CMP-CANARY", "event_type": kind,
           "occurred_at": _ts(day - dt.timedelta(days=i + 1), 8 + j)}
          for i in range(4) for j, kind in enumerate(("opened", "clicked"))])  # fmt: skip
    written.append(engagement)
    generated = next((landing / "consent" / "events").rglob("part-*.parquet"))
    schema = pq.read_schema(generated)
    rows = [
        {"consent_event_id": "CE99999991", "contact_point": EMAIL, "contact_point_type": "email",
         "channel": "email", "purpose": "marketing", "status": "granted"},
        {"consent_event_id": "CE99999992", "contact_point": PHONE_US, "contact_point_type": "phone",
         "channel": "sms", "purpose": "marketing", "status": "granted"},
    ]  # fmt: skip
    at = dt.datetime.combine(day - dt.timedelta(days=40), dt.time(9))
    for r in rows:
        r.update({"captured_at": at, "expires_at": None, "source": "preference_centre"})
    consent = folder("consent", "events") / "canary.parquet"
    table = pa.Table.from_pylist(
        [{f.name: _cast(r.get(f.name), f.type) for f in schema} for r in rows], schema=schema
    )
    pq.write_table(table, consent)
    written.append(consent)
    return written


def _cast(value, typ):
    if value is None:
        return None
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, dt.datetime) else value
    return value


def table_hits(home) -> dict[str, int]:
    """Rows whose text (the whole row) holds the canary, per table of every DuckDB file."""
    hits: dict[str, int] = {}
    for db in sorted(home.rglob("*.duckdb")):
        with duckdb.connect(str(db), read_only=True) as con:
            tables = con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = current_database()"
            ).fetchall()
            for schema, name in tables:
                n = con.execute(
                    f'select count(*) from "{schema}"."{name}" t '
                    "where regexp_matches(lower(cast(t as varchar)), ?)",
                    [SQL_CANARY],
                ).fetchone()[0]
                if n:
                    hits[f"{db.name}:{schema}.{name}"] = n
    return hits


def file_hits(home) -> list[str]:
    """Files under the home holding the canary (DuckDB files are searched table by table)."""
    return [
        str(p.relative_to(home))
        for p in sorted(home.rglob("*"))
        if p.is_file()
        and ".duckdb" not in p.name
        and "truth" not in p.relative_to(home).parts
        and (CANARY.search(p.read_bytes()) or _parquet_hit(p))
    ]


def _parquet_hit(path) -> bool:
    if path.suffix != ".parquet":
        return False
    return bool(CANARY.search(json.dumps(pq.read_table(path).to_pylist(), default=str).encode()))


@pytest.fixture(scope="module")
def erased_home(tmp_path_factory):
    from demo.generator import generate
    from orchestration.cli import main
    from orchestration.pipeline import run_nightly

    root = tmp_path_factory.mktemp("erasure_canary")
    kept = tmp_path_factory.mktemp("erasure_canary_originals")
    with pytest.MonkeyPatch.context() as mp:
        home = make_home(root, mp)
        mp.setenv("C360_ERASURE_KEY", "k" * 40)
        generate(300, 23, AS_OF, home.landing, home.truth, progress=None)
        planted = plant(home.landing, AS_OF)
        for p in planted:
            shutil.copy(
                p, kept / f"{p.parent.parent.parent.name}__{p.parent.parent.name}__{p.name}"
            )
        night1 = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
        assert night1.success, night1.checks_failed
        before_tables = table_hits(home.home)
        web = "select count(*) from raw.web__events where user_id = 'S9999991'"
        with duckdb.connect(str(home.warehouse), read_only=True) as con:
            web_before = con.execute(web).fetchone()[0]
        before_files = file_hits(home.home)
        with duckdb.connect(str(home.warehouse), read_only=True) as con:
            customer = con.execute(
                "select customer_id, is_erased from marts.customer_360 where email = ?",
                [EMAIL.lower()],
            ).fetchone()
        day2 = AS_OF + dt.timedelta(days=1)
        assert main(["erase", "--email", EMAIL, "--as-of", day2.isoformat()]) == 0
        night2 = run_nightly(day2, instance=home.instance, log_level="WARNING")
        assert night2.success, night2.checks_failed
        after_tables, after_files = table_hits(home.home), file_hits(home.home)
        with duckdb.connect(str(home.warehouse), read_only=True) as con:
            web_after = con.execute(web).fetchone()[0]
        # a re-delivery: the original canary files again, under new names, a day later
        day3 = day2 + dt.timedelta(days=1)
        for p in sorted(kept.iterdir()):
            source, entity, name = p.name.split("__", 2)
            folder = home.landing / source / entity / f"dt={day3.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, folder / f"redelivered-{name}")
        night3 = run_nightly(day3, instance=home.instance, log_level="WARNING")
        assert night3.success, night3.checks_failed
        redelivered_tables = table_hits(home.home)
        with duckdb.connect(str(home.warehouse), read_only=True) as con:
            receipts = con.execute(
                "select request_id, source, places, rows_touched, files_touched, destinations, "
                "status, identifier_kinds from audit.erasure_receipts"
            ).fetchall()
            erased_rows = con.execute(
                "select contract_id, sum(cast(json_extract(outcome, '$.erased') as bigint)) "
                "from audit.ingestion_batches where as_of = ? group by all having sum("
                "cast(json_extract(outcome, '$.erased') as bigint)) > 0",
                [day3],
            ).fetchall()
            history = con.execute(
                "select count(*), count(*) filter (where customer_id = ?) "
                "from activation.contact_history",
                [customer[0]],
            ).fetchone()
    yield {
        "home": home, "customer": customer, "before_tables": before_tables,
        "before_files": before_files, "after_tables": after_tables, "after_files": after_files,
        "redelivered_tables": redelivered_tables, "redelivered_files": file_hits(home.home),
        "receipts": receipts, "web": (web_before, web_after), "erased_rows": dict(erased_rows), "history": history,
    }  # fmt: skip


def test_the_search_finds_the_canary_before_the_erasure(erased_home):
    tables = erased_home["before_tables"]
    for name in PII_TABLES:
        assert any(k.endswith(f":raw.{name}") for k in tables), (name, tables)
    assert any(k.endswith(":marts.customer_360") for k in tables)
    assert erased_home["web"][0] == 3  # the canary's web events, which carry ids only
    assert erased_home["customer"] is not None and erased_home["customer"][1] is False
    files = erased_home["before_files"]
    assert any(f.startswith("landing/") for f in files)
    # the file drop of the engaged-email audience holds the canary (first name, email)
    assert any(f.startswith("outbox/") for f in files), files


def test_after_one_night_no_table_and_no_file_holds_the_canary(erased_home):
    assert erased_home["after_tables"] == {}
    assert erased_home["after_files"] == []
    assert erased_home["web"][1] == 0


def test_a_redelivered_landing_file_does_not_resurrect_the_person(erased_home):
    assert erased_home["redelivered_tables"] == {}
    # the re-delivered rows were read and dropped as erased (counted, not silently lost)
    erased = erased_home["erased_rows"]
    for name in SOURCE_TABLES:
        assert erased.get(name, 0) > 0, (name, erased)
    # the re-delivered files still hold the person: they are the source's, as delivered
    assert any("redelivered-" in f for f in erased_home["redelivered_files"])


def test_the_receipt_lists_every_place(erased_home):
    # the generator's own requests were carried out too (night 1); the canary's is the CLI's
    (receipt,) = [r for r in erased_home["receipts"] if r[1] == "cli"]
    request_id, source, places, rows, files, _, status, kinds = receipt
    assert request_id.startswith("CLI-") and source == "cli" and status == "done"
    where = {p["place"] for p in json.loads(places)}
    for name in (*SOURCE_TABLES, "consent__erasure_requests"):
        assert f"raw.{name}" in where, (name, where)
    assert "activation.contact_history" in where
    for folder in ("crm/contacts", "shop/customers", "loyalty/members", "shop/orders",
                   "web/events", "email/engagement", "consent/events",
                   "consent/erasure_requests"):  # fmt: skip
        assert any(p.startswith(f"landing/{folder}/") for p in where), (folder, where)
    assert any(p.startswith("outbox/") for p in where), where
    assert rows > 0 and files >= 9
    assert {"email", "phone", "crm_contact_id", "shop_customer_id", "customer_id"} <= set(kinds)


def test_contact_history_keeps_its_rows_without_the_person(erased_home):
    total, of_person = erased_home["history"]
    assert total > 0 and of_person == 0
