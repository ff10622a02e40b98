"""Erasure building blocks (issue 16, core 3) on small fixtures: atomic file rewrites, the
tombstone filter in a real ingestion night (row accounting with `erased`), the CLI's queued
request, and erase_pending on a small warehouse (rows, pseudonyms, ledger, receipt)."""

import csv
import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.privacy import files, tombstones
from orchestration.privacy.erasure import erase_pending
from orchestration.privacy.keys import keyed_hash
from orchestration.privacy.queue import queue_request
from orchestration.warehouse import connect
from tests.ingest_night import copy_landing, night

AS_OF = dt.date(2026, 11, 21)
EMAIL, PHONE = "gone.person@example.org", "+14155550199"
NEEDLES = {("email", EMAIL): {"R1"}, ("phone", PHONE): {"R1"}, ("crm_contact_id", "C9"): {"R1"}}


@pytest.fixture(autouse=True)
def _key(monkeypatch, tmp_path):
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_ERASURE_KEY", "unit-test-key-" + "x" * 32)


def test_a_csv_is_rewritten_atomically_without_the_person(tmp_path):
    path = tmp_path / "part.csv"
    path.write_text(
        "id,email,phone\nC1,keep@example.org,\nC2, Gone.Person@Example.org ,\n"
        "C3,,(415) 555-0199\nC4,other@example.org,+1 415 555 0100\n"
    )
    done = files.rewrite_file(path, NEEDLES)
    assert done is not None and done.rows_by_request == {"R1": 2} and not done.removed
    rows = list(csv.DictReader(path.open()))
    assert [r["id"] for r in rows] == ["C1", "C4"]
    assert done.sha256 is not None and len(done.sha256) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["part.csv"]  # no temporary file left


def test_jsonl_keeps_other_lines_byte_for_byte_and_parquet_its_schema(tmp_path):
    kept = '{"id": "A",  "email": "keep@example.org"}\n'
    path = tmp_path / "part.jsonl"
    path.write_text(kept + json.dumps({"id": "C9", "email": None}) + "\n")
    assert files.rewrite_file(path, NEEDLES).rows_by_request == {"R1": 1}
    assert path.read_text() == kept
    pq_path = tmp_path / "drop.parquet"
    schema = pa.schema([("customer_id", pa.string()), ("email", pa.string())])
    pq.write_table(
        pa.Table.from_pylist(
            [{"customer_id": "X1", "email": EMAIL}, {"customer_id": "X2", "email": "a@b.org"}],
            schema=schema,
        ),
        pq_path,
    )
    assert files.rewrite_file(pq_path, NEEDLES).rows_by_request == {"R1": 1}
    table = pq.read_table(pq_path)
    assert table.schema == schema and table.column("customer_id").to_pylist() == ["X2"]


def test_a_file_left_without_rows_is_removed_and_an_unrelated_one_untouched(tmp_path):
    gone = tmp_path / "only.csv"
    gone.write_text(f"id,email\nC5,{EMAIL}\n")
    other = tmp_path / "other.csv"
    other.write_text("id,email\nC6,keep@example.org\n")
    before = other.stat().st_mtime_ns
    (done,) = files.rewrite_trees([(tmp_path, NEEDLES)])
    assert [(d.path.name, d.removed) for d in done] == [("only.csv", True)]
    assert not gone.exists() and other.stat().st_mtime_ns == before


def _tree(root: Path) -> None:
    """Files of each format, some holding the person, one holding only the person."""
    for i in range(6):
        folder = root / f"dt=2026-11-{10 + i}"
        folder.mkdir(parents=True)
        (folder / "a.csv").write_text(
            "id,email,phone\n"
            + "".join(f"C{i}{j},keep{j}@example.org,\n" for j in range(50))
            + (f"C{i}x,{EMAIL},\n" if i % 2 else "")
        )
        (folder / "b.jsonl").write_text(
            "".join(json.dumps({"id": f"J{i}{j}", "phone": "+1 415 555 0100"}) + "\n"
                    for j in range(30))
            + (json.dumps({"id": "C9"}) + "\n" if i % 3 == 0 else "")
        )  # fmt: skip
        pq.write_table(
            pa.Table.from_pylist(
                [{"id": f"P{i}{j}", "phone": PHONE if j == i else None} for j in range(20)]
            ),
            folder / "c.parquet",
        )
    (root / "dt=2026-11-10" / "only.csv").write_text(f"id,email\nC5,{EMAIL}\n")


def _state(root: Path, done) -> tuple[list, dict]:
    return (
        [(d.path.relative_to(root), d.rows_by_request, d.removed, d.sha256, d.size) for d in done],
        {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()},
    )


def test_trees_shared_among_worker_processes_are_rewritten_as_by_one(tmp_path, monkeypatch):
    """Two trees with needles of their own (an email only in the second), their files shared
    among two processes: the same rewrites, files and order as in one process."""
    only_email = {("email", EMAIL): {"R2"}}
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        _tree(root / "a")
        _tree(root / "b")
    by_one = files.rewrite_trees([(one / "a", NEEDLES), (one / "b", only_email)], workers=1)
    monkeypatch.setattr(files, "PARALLEL_FROM_BYTES", 0)  # these small trees in processes too
    by_two = files.rewrite_trees([(two / "a", NEEDLES), (two / "b", only_email)], workers=2)
    sequential = [_state(one / t, d) for t, d in zip("ab", by_one, strict=True)]
    assert [_state(two / t, d) for t, d in zip("ab", by_two, strict=True)] == sequential
    first, second = sequential
    assert [p for p, *_ in first[0]] == sorted(p for p, *_ in first[0])  # path order
    assert len(first[0]) == 3 + 2 + 6 + 1  # every file holding the person, and only those
    assert len(second[0]) == 3 + 1 and {r for _, by, *_ in second[0] for r in by} == {"R2"}
    assert Path("dt=2026-11-10/only.csv") not in first[1]  # removed: no row left


@pytest.mark.parametrize("piece_bytes", [64, 700])
def test_text_files_searched_in_pieces_are_rewritten_as_whole(tmp_path, monkeypatch, piece_bytes):
    """Text files split into pieces of a few lines, each piece searched by a worker on its own
    and the file written once: the same rewrites and bytes as one process reading each file
    whole; a CSV with a quoted cell over two lines is rewritten whole, and a file whose every
    line holds the person removed."""
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        _tree(root)
        folder = root / "dt=2026-11-20"
        folder.mkdir()
        (folder / "quoted.csv").write_text(
            "id,note,email\n" + "".join(f'Q{j},"line one\nline two",keep{j}@example.org\n'
                                         for j in range(20))
            + f'Q99,"a\nb",{EMAIL}\n'
        )  # fmt: skip
        (folder / "all.csv").write_text("id,email\n" + f"C7,{EMAIL}\n" * 30)
        (folder / "all.jsonl").write_text("".join(json.dumps({"id": "C9", "n": j}) + "\n"
                                                  for j in range(40)))  # fmt: skip
        (folder / "crlf.csv").write_bytes(
            b"id,email\r\n" + b"".join(f"K{j},{EMAIL if j % 7 == 0 else 'k@x.org'}\r\n".encode()
                                        for j in range(60))
        )  # fmt: skip
    by_one = files.rewrite_trees([(one, NEEDLES)], workers=1)
    monkeypatch.setattr(files, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(files, "PIECE_BYTES", piece_bytes)
    assert len(files._pieces(two / "dt=2026-11-20" / "crlf.csv", 60 * 20)) > 1
    # a file gone since the tree was listed is one piece, which its worker finds missing
    assert files._pieces(two / "gone.csv", 5_000) == [(0, 5_000)]
    by_two = files.rewrite_trees([(two, NEEDLES)], workers=2)
    assert _state(two, by_two[0]) == _state(one, by_one[0])
    names = {(d.path.name, d.removed) for d in by_one[0] if d.path.parent.name == "dt=2026-11-20"}
    assert names == {
        ("quoted.csv", False), ("all.csv", True), ("all.jsonl", True), ("crlf.csv", False),
    }  # fmt: skip


def test_ingestion_drops_tombstoned_rows_and_counts_them_erased(tmp_path):
    from demo.generator import generate

    generate(60, 3, AS_OF, tmp_path / "gen", tmp_path / "truth", progress=None)
    landing = tmp_path / "landing"
    path = copy_landing(tmp_path / "gen", landing, "crm__contacts", AS_OF)
    rows = list(csv.DictReader(path.open()))
    victim = next(r for r in rows if r["email"])
    with connect(tmp_path / "wh.duckdb") as con:
        tombstones.add(con, "R1", {("email", victim["email"].strip().lower())})
        batch, gate, published = night(con, "crm__contacts", landing, "r1", AS_OF)
        assert batch.erased >= 1 and gate.passed and published
        assert batch.extracted == (
            batch.loaded + batch.quarantined + batch.deduplicated + batch.erased
        )
        assert con.execute(
            "select count(*) from raw.crm__contacts where lower(trim(email)) = ?",
            [victim["email"].strip().lower()],
        ).fetchone() == (0,)
        assert con.execute("select count(*) from raw.crm__contacts").fetchone()[0] == batch.loaded


def test_the_cli_request_lands_as_a_consent_erasure_request(tmp_path):
    now = dt.datetime(2026, 11, 23, 8, 0)
    rid, path = queue_request(tmp_path, "phone", " +1 415 555 0199 ", AS_OF, now=now)
    assert rid.startswith("CLI-")
    assert path.parent == tmp_path / "consent" / "erasure_requests" / f"dt={AS_OF}"
    (row,) = list(csv.DictReader(path.open()))
    assert row == {
        "erasure_request_id": rid, "contact_point": "+1 415 555 0199",
        "contact_point_type": "phone", "requested_at": "2026-11-21T23:59:59Z",
    }  # fmt: skip
    with pytest.raises(ValueError):
        queue_request(tmp_path, "name", "x", AS_OF)


def _small_warehouse(path: Path, landing: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    for s in ("raw", "marts", "activation", "audit", "quarantine"):
        con.execute(f"create schema {s}")
    meta = "_batch_id varchar, _loaded_at timestamp, _source_file varchar"
    con.execute(
        "create table raw.crm__contacts (contact_id varchar, email varchar, phone varchar, "
        f"mobile_phone varchar, country_code varchar, first_name varchar, {meta})"
    )
    con.execute(
        "insert into raw.crm__contacts values ('C9', ' Gone.Person@example.org', null, null, "
        "'US', 'Gone', 'b', now(), 'f'), ('C1', 'keep@example.org', '+14155550100', null, 'US', "
        "'Kept', 'b', now(), 'f')"
    )
    con.execute(
        "create table raw.shop__customers (shop_customer_id varchar, email varchar, "
        f"phone varchar, country_code varchar, {meta})"
    )
    # no email in the shop: reached through customer_id_map (the same customer as C9)
    con.execute(
        "insert into raw.shop__customers values ('S9', null, '(415) 555-0199', 'US', 'b', now(), "
        "'f'), ('S1', 'keep@example.org', null, 'US', 'b', now(), 'f')"
    )
    con.execute(
        f"create table raw.shop__orders (order_id varchar, shop_customer_id varchar, {meta})"
    )
    con.execute(
        "insert into raw.shop__orders values ('O1', 'S9', 'b', now(), 'f'), "
        "('O2', 'S1', 'b', now(), 'f')"
    )
    con.execute(
        "create table raw.consent__erasure_requests (erasure_request_id varchar, "
        f"contact_point varchar, contact_point_type varchar, requested_at timestamp, {meta})"
    )
    con.execute(
        "insert into raw.consent__erasure_requests values ('ER1', 'gone.person@EXAMPLE.org', "
        "'email', timestamp '2026-11-21 10:00:00', 'b', now(), 'f')"
    )
    con.execute(
        "create table marts.customer_id_map (source varchar, entity varchar, "
        "source_record_id varchar, record_key varchar, customer_id varchar)"
    )
    con.execute(
        "insert into marts.customer_id_map values ('crm', 'contacts', 'C9', 'k9', 'CUST9'), "
        "('shop', 'customers', 'S9', 'ks9', 'CUST9'), ('crm', 'contacts', 'C1', 'k1', 'CUST1')"
    )
    con.execute(
        "create table activation.contact_history (contact_id varchar, customer_id varchar, "
        "contact_point varchar, outcome varchar)"
    )
    con.execute(
        "insert into activation.contact_history values ('H1', 'CUST9', 'gone.person@example.org', "
        "'ok'), ('H2', 'CUST9', '+14155550199', 'ok'), ('H3', 'CUST1', 'keep@example.org', 'ok')"
    )
    con.execute(
        "create table audit.ingestion_files (contract_id varchar, path varchar, sha256 varchar, "
        "size_bytes bigint, batch_id varchar, as_of date, published_at timestamp)"
    )
    folder = landing / "crm" / "contacts" / "dt=2026-11-21"
    folder.mkdir(parents=True)
    f = folder / "part.csv"
    f.write_text("contact_id,email\nC9,gone.person@example.org\nC1,keep@example.org\n")
    con.execute(
        "insert into audit.ingestion_files values ('crm__contacts', ?, 'old', 1, 'b', "
        "date '2026-11-21', now())",
        [str(f)],
    )
    return con


def test_erase_pending_deletes_pseudonymises_rewrites_and_records(tmp_path, monkeypatch):
    from orchestration.privacy.column_index import ColumnIndex

    built = []  # each (table, columns) index, by the table's unquoted name
    build = ColumnIndex._build
    monkeypatch.setattr(
        ColumnIndex,
        "_build",
        lambda self, table, cols: (
            built.append((table.replace('"', ""), cols)) or build(self, table, cols)
        ),
    )
    landing, outbox = tmp_path / "landing", tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "drop.csv").write_text("customer_id,first_name\nCUST9,Gone\nCUST1,Kept\n")
    with _small_warehouse(tmp_path / "wh.duckdb", landing) as con:
        summary = erase_pending(con, AS_OF, "run1", landing=landing, outbox=outbox)
        assert summary.requests == 1 and summary.files == 2
        # expansion and deletion share a table's index: one scan of a raw table per column type
        assert "raw.crm__contacts" in {t for t, _ in built} and len(built) == len(set(built))
        assert con.execute("select contact_id from raw.crm__contacts").fetchall() == [("C1",)]
        assert con.execute("select shop_customer_id from raw.shop__customers").fetchall() == [
            ("S1",)
        ]
        assert con.execute("select order_id from raw.shop__orders").fetchall() == [("O2",)]
        assert con.execute("select count(*) from raw.consent__erasure_requests").fetchone() == (0,)
        history = dict(
            con.execute("select contact_id, customer_id from activation.contact_history").fetchall()
        )
        assert len(history) == 3 and history["H3"] == "CUST1"
        assert history["H1"] == history["H2"] != "CUST9" and history["H1"].startswith("erased:")
        assert con.execute(
            "select count(*) from activation.contact_history where contact_point like '%@%' "
            "or contact_point like '+1415555019%'"
        ).fetchone() == (1,)
        new_sha = con.execute("select sha256 from audit.ingestion_files").fetchone()[0]
        (rid, places, kinds, hashes, status) = con.execute(
            "select request_id, places, identifier_kinds, identifier_hashes, status "
            "from audit.erasure_receipts"
        ).fetchone()
        # a second night: nothing pending, nothing touched again
        assert erase_pending(con, AS_OF, "run2", landing=landing, outbox=outbox).requests == 0
    assert rid == "ER1" and status == "done"
    where = {p["place"] for p in json.loads(places)}
    assert {"raw.crm__contacts", "raw.shop__customers", "raw.shop__orders",
            "raw.consent__erasure_requests", "activation.contact_history",
            "landing/crm/contacts/dt=2026-11-21/part.csv", "outbox/drop.csv"} <= where  # fmt: skip
    assert {"email", "phone", "crm_contact_id", "shop_customer_id", "customer_id"} <= set(kinds)
    assert keyed_hash("email", "gone.person@example.org") in hashes
    assert "gone" not in json.dumps(places).lower()
    f = landing / "crm" / "contacts" / "dt=2026-11-21" / "part.csv"
    assert f.read_text() == "contact_id,email\nC1,keep@example.org\n"
    import hashlib

    assert new_sha == hashlib.sha256(f.read_bytes()).hexdigest()
    assert (outbox / "drop.csv").read_text() == "customer_id,first_name\nCUST1,Kept\n"


def test_a_household_phone_does_not_erase_the_other_person(tmp_path):
    """C9 (erased) and C1 share a landline: C1's record, files and future rows stay; the phone
    only reaches contact-point rows (its tombstone has scope contact_point)."""
    landing = tmp_path / "landing"
    with _small_warehouse(tmp_path / "wh.duckdb", landing) as con:
        con.execute("update raw.crm__contacts set phone = '+14155550100' where contact_id = 'C9'")
        erase_pending(con, AS_OF, "run1", landing=landing, outbox=tmp_path / "outbox")
        assert con.execute("select contact_id from raw.crm__contacts").fetchall() == [("C1",)]
        scopes = dict(
            con.execute(
                "select kind, list_distinct(list(scope)) from audit.erasure_tombstones group by kind"
            ).fetchall()
        )
    assert scopes["phone"] == ["contact_point"] and scopes["email"] == ["person"]
    assert scopes["crm_contact_id"] == ["person"] and scopes["customer_id"] == ["person"]
    f = landing / "crm" / "contacts" / "dt=2026-11-21" / "part.csv"
    assert f.read_text() == "contact_id,email\nC1,keep@example.org\n"


def test_tombstones_of_many_requests_in_one_statement_keep_the_first_owner(tmp_path):
    """add_many: a hash already recorded keeps its row, a hash two requests share is the first
    request's, a person anchor wins over the same value as a contact point; the count is of new
    rows only."""
    with connect(tmp_path / "wh.duckdb") as con:
        assert tombstones.add(con, "R0", {("email", "old@x.org")}) == 1
        new = tombstones.add_many(
            con,
            [
                ("R1", {("email", "a@x.org"), ("crm_contact_id", "C1")}, {("phone", "+15550001")}),
                ("R2", {("phone", "+15550001")}, {("email", "a@x.org"), ("email", "old@x.org")}),
            ],
        )
        assert new == 3
        rows = con.execute(
            "select kind, request_id, scope from audit.erasure_tombstones order by all"
        ).fetchall()
        assert rows == [
            ("crm_contact_id", "R1", "person"),
            ("email", "R0", "person"),
            ("email", "R1", "person"),
            ("phone", "R1", "contact_point"),
        ]
        assert tombstones.add_many(con, [("R3", {("email", "a@x.org")}, set())]) == 0


@pytest.mark.parametrize("settled", [True, False])
def test_a_file_erasure_rewrote_is_only_stated_the_next_night_once_settled(
    tmp_path, monkeypatch, settled
):
    """The erasure records the stat signature of a landing file it rewrote next to the new hash
    (as ingestion does for a file it reads), so the next night takes the file as published
    without reading it. A rewrite still inside the racy window (RACY_NS) gets no signature: the
    next night reads it once, finds the bytes the ledger holds, and publishes nothing."""
    import os
    import time

    from demo.generator import generate
    from orchestration.ingest import file_hash, landing

    generate(60, 3, AS_OF, tmp_path / "gen", tmp_path / "truth", progress=None)
    landing_dir = tmp_path / "landing"
    path = copy_landing(tmp_path / "gen", landing_dir, "crm__contacts", AS_OF)
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))  # not written around its read (racy)
    victim = next(r for r in csv.DictReader(path.open()) if r["email"])
    with connect(tmp_path / "wh.duckdb") as con:
        assert night(con, "crm__contacts", landing_dir, "r1", AS_OF)[2]
        con.execute(
            "create table raw.consent__erasure_requests (erasure_request_id varchar, "
            "contact_point varchar, contact_point_type varchar, requested_at timestamp, "
            "_batch_id varchar, _loaded_at timestamp, _source_file varchar)"
        )
        con.execute(
            "insert into raw.consent__erasure_requests values ('ER1', ?, 'email', "
            "timestamp '2026-11-21 10:00:00', 'b', now(), 'f')",
            [victim["email"]],
        )
        # the racy window closed (settled) or still open when the step ends
        monkeypatch.setattr(file_hash, "RACY_NS", 0 if settled else 3600 * 10**9)
        assert erase_pending(con, AS_OF, "r2", landing=landing_dir).files == 1
        sha = landing.file_sha256(path)
        assert con.execute("select sha256 from audit.ingestion_files").fetchall() == [(sha,)]
        signatures = con.execute(
            "select path, sha256 from audit.landing_file_signatures"
        ).fetchall()
        assert signatures == ([(str(path), sha)] if settled else [])

        read: list[Path] = []
        scan = landing.scan_file
        monkeypatch.setattr(landing, "scan_file", lambda p: read.append(p) or scan(p))
        batch, _, published = night(con, "crm__contacts", landing_dir, "r3", AS_OF)
        assert read == ([] if settled else [path])
        assert batch.files == [] and not published
        assert con.execute("select count(*) from raw.crm__contacts where email = ?",
                           [victim["email"]]).fetchone() == (0,)  # fmt: skip
