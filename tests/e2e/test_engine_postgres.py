"""The warehouse `Connection` on a real Postgres (engine.postgres): DuckDB's SQL translated and
run, Arrow rows registered, and a Python step of the nightly (the phone lookup) giving the same
table on Postgres as on DuckDB."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

import duckdb
import pyarrow as pa
import pytest

from orchestration.engine.transpile import UntranslatableSQL
from orchestration.identity import phones
from tests.e2e.pg import sorted_rows

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]


def test_duckdb_sql_runs_with_parameters_percent_signs_and_several_statements(pg):
    pg.execute(
        "create schema if not exists s; "
        "create table if not exists s.t (k varchar not null, n bigint, d date, primary key (k))"
    )
    pg.execute("insert into s.t values (?, ?, cast(? as date))", ["a%b", 1, "2026-11-21"])
    pg.execute("insert into s.t values (?, ?, ?)", ["plain", None, None])
    # a literal % in the text, with and without parameters
    like = "select k from s.t where k like '%\\%%' escape '\\'"
    assert pg.execute(like).fetchall() == [("a%b",)]
    assert pg.execute(like + " and k <> ?", ["plain"]).fetchall() == [("a%b",)]
    rows = pg.execute("select k, n, d from s.t where n = ?", [1])
    assert rows.fetchall() == [("a%b", 1, dt.date(2026, 11, 21))]
    # DuckDB's own forms, translated: filter, strftime, list aggregation
    one = pg.execute(
        "select count(*) filter (where n is null), strftime(max(d), '%Y-%m'), list(k order by k) "
        "from s.t"
    ).fetchone()
    assert one == (1, "2026-11", ["a%b", "plain"])
    assert pg.execute("select 1 where false").fetchone() is None


def test_a_duckdb_only_statement_is_refused_before_it_runs(pg):
    pg.execute("create table t (k varchar primary key, v bigint)")
    with pytest.raises(UntranslatableSQL, match="insert or replace"):
        pg.execute("insert or replace into t values ('a', 1)")
    assert pg.execute("select count(*) from t").fetchone() == (0,)


def test_registered_arrow_rows_keep_nulls_empty_strings_and_types(pg):
    table = pa.table(
        {
            "s": pa.array(["x", "", None, 'q"u,o\nte', "Müller"], pa.string()),
            "b": pa.array([True, None, False, True, False]),
            "i": pa.array([1, None, -3, 2**40, 0], pa.int64()),
            "f": pa.array([0.5, None, 1e-9, -2.25, 3.0]),
            "d": pa.array([dt.date(2026, 1, 2), None, dt.date(1900, 12, 31)] + [None] * 2),
            "t": pa.array([dt.datetime(2026, 11, 21, 13, 5, 7, 123456)] + [None] * 4),
        }
    )
    pg.register("_rows", table)
    back = pg.execute("select s, b, i, f, d, t from _rows").fetchall()
    assert back == [tuple(r.values()) for r in table.to_pylist()]
    assert pg.execute("select count(*) from _rows where s = ''").fetchone() == (1,)
    pg.unregister("_rows")
    with pytest.raises(Exception, match="_rows"):
        pg.execute("select * from _rows")


def _raw_phone_tables(execute) -> None:
    """The raw tables' phone columns (from the contracts), with varied texts and regions."""
    columns: dict[str, set[str]] = defaultdict(set)
    for table, col in phones.PHONE_INPUTS:
        columns[table] |= {c for c in (col.column, col.region_column, col.type_column) if c}
    texts = ["+1 415 555 0100", "0044 20 7946 0958", "(415) 555-0101", "abc", "", None, "12"]
    execute("create schema if not exists raw")
    for table, cols in sorted(columns.items()):
        ordered = sorted(cols)
        execute(f"create table raw.{table} ({', '.join(f'{c} varchar' for c in ordered)})")
        for i, text in enumerate(texts):
            values = []
            for c in ordered:
                if c.endswith("type"):
                    values.append("phone" if i % 3 else "email")
                elif any(c == col.region_column for _, col in phones.PHONE_INPUTS):
                    values.append(["gb", None, "US", " de "][i % 4])
                else:
                    values.append(text)
            marks = ", ".join("?" for _ in ordered)
            execute(f"insert into raw.{table} values ({marks})", values)


def test_the_phone_lookup_is_the_same_table_on_postgres_and_duckdb(pg):
    duck = duckdb.connect()
    _raw_phone_tables(duck.execute)
    _raw_phone_tables(pg.execute)
    counts = {
        name: phones.refresh(con, "2026-11-21", fallback_region="US")
        for name, con in (("duckdb", duck), ("postgres", pg))
    }
    assert counts["postgres"] == counts["duckdb"]
    assert counts["duckdb"]["new_texts"] > 5 and counts["duckdb"]["total_e164"] > 2
    query = "select raw_text, region, e164, is_valid, reason, first_seen_as_of from " + phones.TABLE
    assert sorted(pg.execute(query).fetchall()) == sorted(duck.execute(query).fetchall())
    # a second night parses nothing again, on either engine
    for con in (duck, pg):
        assert phones.refresh(con, "2026-11-22", fallback_region="US")["new_texts"] == 0


def test_table_and_view_helpers_replace_in_one_transaction(pg):
    from orchestration.engine import recreate_table, replace_table, replace_view, store_table

    pg.execute("create schema s")
    replace_table(pg, "s.t", "select 1 as a, 'x' as b")
    replace_view(pg, "s.v", "select a from s.t")
    # Postgres' own `create or replace view` refuses a changed column list; the helper does not
    replace_view(pg, "s.v", "select b, a from s.t")
    assert pg.execute("select b, a from s.v").fetchall() == [("x", 1)]
    pg.execute("drop view s.v")
    replace_table(pg, "s.t", "select cast(? as bigint) as c", [7])
    assert pg.execute("select * from s.t").fetchall() == [(7,)]
    # inside the caller's transaction, a rollback undoes the replacement
    pg.execute("begin")
    replace_table(pg, "s.t", "select 8 as c")
    pg.execute("rollback")
    assert pg.execute("select * from s.t").fetchall() == [(7,)]
    recreate_table(pg, "s.t", "k varchar, n bigint")
    assert pg.execute("select count(*) from s.t").fetchone() == (0,)
    store_table(pg, "s.u", pa.table({"k": pa.array(["a", "", None]), "n": pa.array([1, None, 3])}))
    assert sorted(pg.execute("select k, n from s.u").fetchall(), key=repr) == sorted(
        [("a", 1), ("", None), (None, 3)], key=repr
    )


def test_a_replaced_table_keeps_the_views_on_it_while_its_columns_stay(pg):
    from orchestration.engine import replace_table, replace_view

    pg.execute("create schema s")
    replace_table(pg, "s.t", "select 1 as a")
    replace_view(pg, "s.v", "select a from s.t")
    replace_table(pg, "s.t", "select 2 as a")  # Postgres would refuse a drop: the view needs it
    assert pg.execute("select a from s.v").fetchall() == [(2,)]
    replace_table(pg, "s.t", "select 'x' as b")  # other columns: the view goes, as on DuckDB
    assert pg.execute("select b from s.t").fetchall() == [("x",)]
    views = "select count(*) from information_schema.views where table_schema = 's'"
    assert pg.execute(views).fetchone() == (0,)


def test_registering_an_empty_or_all_null_frame_works_and_a_failure_keeps_its_error(pg):
    import pandas as pd
    import psycopg2

    pg.register("_empty", pd.DataFrame({"customer_id": pd.Series([], dtype=object)}))
    assert pg.execute("select count(*) from _empty").fetchone() == (0,)
    pg.register("_nulls", pd.DataFrame({"k": ["a", "b"], "reason": [None, None]}))
    assert pg.execute("select k, reason from _nulls order by k").fetchall() == [
        ("a", None),
        ("b", None),
    ]
    pg.execute("begin")
    pg.register("_in_tx", pa.table({"k": ["a"]}))
    with pytest.raises(psycopg2.errors.UndefinedTable):
        try:
            pg.execute("select * from no_such_table")
        finally:
            pg.unregister("_in_tx")  # in the failed transaction: must not replace the error
    pg.execute("rollback")


def test_the_session_runs_in_utc(pg):
    assert pg.execute("select current_setting('TimeZone')").fetchone() == ("UTC",)


# --- ingestion (write-audit-publish) on both engines --------------------------------------------

_INGEST_DAY = dt.date(2026, 11, 21)


def _contact(**over: object) -> dict:
    row = {
        "contact_id": "C1", "account_id": None, "first_name": "Ada", "last_name": "Lovelace",
        "email": "ada@example.com", "phone": None, "mobile_phone": None,
        "date_of_birth": "1945-04-03", "address_line1": "1 Main St", "address_line2": None,
        "city": "Springfield", "postal_code": "62701", "region": None, "country_code": "US",
        "time_zone": None, "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-11-01T10:00:00Z", "is_deleted": "false",
    }  # fmt: skip
    row.update(over)
    return row


def _land_contacts(landing, day: dt.date, name: str, rows: list[dict], junk: str = "") -> None:
    folder = landing / "crm" / "contacts" / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows) + junk)


def test_ingestion_verdicts_dedup_and_gates_are_the_same_on_postgres(pg, tmp_path, monkeypatch):
    """Every kind of row the contract judges, over three nights, on DuckDB and on Postgres: error
    rules, a nullified optional date, Unicode spaces, a future timestamp, versions of one key
    (a tie broken by file and row), a malformed JSON line, re-delivered rows already in raw and in
    quarantine, and a batch the quarantine-share gate blocks. Same counts, samples, verdicts and
    published rows."""
    from orchestration.contracts.gx_suite import validate_table
    from orchestration.contracts.model import source_contract
    from orchestration.ingest.gate import evaluate_gate
    from orchestration.ingest.wap import batch_table, publish_batch, stage_batch
    from orchestration.warehouse import ensure_schemas, warehouse

    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "tmp"))
    contract = source_contract("crm__contacts")
    landing = tmp_path / "landing"
    nbsp = "\u00a0"
    nights = [
        (
            _INGEST_DAY,
            "a.jsonl",
            [
                *[_contact(contact_id=f"OK{i}", email=f"ok{i}@example.com") for i in range(200)],
                _contact(contact_id="BADDOB", date_of_birth="1945-04-93"),
                _contact(contact_id="FEB30", date_of_birth=f" {nbsp}1945-02-30 "),
                _contact(contact_id="PADDED", updated_at=f"{nbsp} 2026-11-02T10:00:00Z "),
                _contact(contact_id="BADMAIL", email="not-an-email"),
                _contact(contact_id=None),
                _contact(contact_id="DUP", updated_at="2026-11-01T10:00:00Z", city="Old"),
                _contact(contact_id="DUP", updated_at="2026-11-03T10:00:00Z", city="New"),
                _contact(contact_id="TIE", city="First"),
                _contact(contact_id="TIE", city="Second"),
            ],
            '{"contact_id": "BROKEN", "first_name": \n',
        ),
        (
            _INGEST_DAY + dt.timedelta(days=1),
            "b.jsonl",
            [
                *[_contact(contact_id=f"OK{i}", email=f"ok{i}@example.com") for i in range(30)],
                _contact(contact_id="BADMAIL", email="not-an-email"),
                _contact(contact_id="DUP", updated_at="2026-11-04T10:00:00Z", city="Newer"),
            ],
            "",
        ),
        (
            _INGEST_DAY + dt.timedelta(days=2),
            "c.jsonl",
            [_contact(contact_id=f"X{i}", email="nope") for i in range(10)]
            + [
                _contact(contact_id="FUTURE", updated_at="2027-01-01T00:00:00Z"),
                _contact(contact_id="OK1", email="ok1@example.com", city="Moved"),
            ],
            "",
        ),
    ]
    for day, name, rows, junk in nights:
        _land_contacts(landing, day, name, rows, junk)

    def run(con) -> list[tuple]:
        ensure_schemas(con)
        seen = []
        for i, (day, *_) in enumerate(nights):
            batch = stage_batch(con, contract, landing, day, f"r{i}")
            suite = validate_table(con, contract, f"{batch_table(contract)}__clean")
            gate = evaluate_gate(contract, batch, suite)
            published = gate.passed and publish_batch(con, contract, batch, f"r{i}", landing)
            staged = json.loads(batch.to_json())
            staged.pop("file_signature")  # the file's stat: when it was read, not how
            seen.append((staged, gate.passed, gate.failures, suite.evaluated, published))
        return seen

    with warehouse(tmp_path / "wh.duckdb") as duck:
        on_duck = run(duck)
        tables = {
            t: sorted_rows(duck, t, skip)
            for t, skip in (
                ("raw.crm__contacts", ("_loaded_at",)),
                ("quarantine.crm__contacts", ()),
                ("audit.ingestion_files", ("published_at",)),
                ("audit.ingestion_audit", ("published_at",)),
            )
        }
    on_pg = run(pg)
    # the nights did what they were written to do (on DuckDB, the reference)
    first, second, third = (n[0] for n in on_duck)
    assert first["quarantined_by_rule"] == {
        "contact_id.required": 1, "email.format": 1, "_file.invalid_json": 1,
    }  # fmt: skip
    assert first["nulled_by_rule"] == {"date_of_birth.type": 2}
    assert first["deduplicated_in_batch"] == 2 and first["samples"]["duplicates"]
    assert (second["deduplicated_in_raw"], second["deduplicated_in_quarantine"]) == (30, 1)
    assert [n[4] for n in on_duck] == [True, True, False]  # the third night is blocked
    assert third["future_by_column"] == {"updated_at": 1}
    assert any("quarantine share" in f for f in on_duck[2][2])
    assert any("future timestamps" in f for f in on_duck[2][2])
    assert on_pg == on_duck
    for table, rows in tables.items():
        skip = ("_loaded_at",) if table.startswith("raw.") else ("published_at",)
        if table.startswith("quarantine."):
            skip = ()
        assert sorted_rows(pg, table, skip) == rows, table
    survivors = dict(
        pg.execute(
            "select contact_id, city from raw.crm__contacts where contact_id in ('DUP', 'TIE') "
            "and _batch_id in (select batch_id from audit.ingestion_audit where as_of = ?)",
            [_INGEST_DAY],
        ).fetchall()
    )
    assert survivors == {"DUP": "New", "TIE": "Second"}  # newest; a tie goes to the later row
