"""The Postgres-table destination against a real Postgres server (tests/e2e/pg.py, no mocks):
rows land exactly; a resend rewrites nothing; a bad row is rejected alone (its batch bisected)
with a reason that carries no value; a lost connection is retried; a stopped server leaves every
row retryable; a table that cannot take an upsert stops the sync."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from orchestration.activation.destinations.postgres_table import (
    PostgresTableConfig,
    PostgresTableConfigError,
    PostgresTableDestination,
    PostgresTableError,
)
from orchestration.activation.destinations.rows import Row, make_row
from orchestration.activation.sync_definition import SyncDefinition
from tests.e2e.pg import PgDatabase, PostgresServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]
FIELDS = ["email", "first_name", "lifetime_revenue"]
_numbers = itertools.count()


@pytest.fixture
def db(pg_server: PostgresServer) -> PgDatabase:
    """A fresh database per test on the session's server."""
    return pg_server.create_database(f"dest_{next(_numbers)}")


def _destination(dsn: str, table: str = "lapsed_high_value", batch_rows: int = 7, **kw):
    config = PostgresTableConfig(
        dsn=dsn, schema="audiences", table=table, batch_rows=batch_rows, max_attempts=3
    )
    sleeps: list[float] = []
    dest = PostgresTableDestination(config, "pg__lapsed", FIELDS, sleep=sleeps.append, **kw)
    return dest, sleeps


def _row(i: int, op: str = "upsert", **changes) -> Row:
    fields = {"email": f"p{i}@example.com", "first_name": f"Name{i}", "lifetime_revenue": 10.5 * i}
    return make_row("pg__lapsed", f"c{i:03d}", op, {} if op == "delete" else fields | changes)


def _table(db: PgDatabase, table: str = "lapsed_high_value") -> dict[str, tuple]:
    with db.cursor() as cur:
        cur.execute(
            f"select identifier, email, first_name, lifetime_revenue::text, idempotency_key, "
            f"xmin::text, updated_at from audiences.{table}"
        )
        return {r[0]: r[1:] for r in cur.fetchall()}


def test_rows_land_exactly_and_a_resend_rewrites_nothing(db):
    dest, _ = _destination(db.dsn)
    rows = [_row(i) for i in range(20)]
    outcomes = dest.send(rows)

    assert {k: (o.status, o.attempts) for k, o in outcomes.items()} == {
        r.idempotency_key: ("ok", 1) for r in rows
    }
    held = _table(db)
    assert {k: v[:4] for k, v in held.items()} == {
        r.identifier: (
            r.fields["email"], r.fields["first_name"], str(r.fields["lifetime_revenue"]),
            r.idempotency_key,
        )
        for r in rows
    }  # fmt: skip
    with db.cursor() as cur:  # the table we created: text fields, identifier the primary key
        cur.execute(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_schema = 'audiences' and table_name = 'lapsed_high_value' "
            "order by ordinal_position"
        )
        assert cur.fetchall() == [
            ("identifier", "text", "NO"),
            ("email", "text", "YES"),
            ("first_name", "text", "YES"),
            ("lifetime_revenue", "text", "YES"),
            ("idempotency_key", "text", "NO"),
            ("updated_at", "timestamp with time zone", "NO"),
        ]

    # the same rows again, on a new connection too: all ok, no tuple rewritten (xmin, updated_at)
    assert {o.status for o in dest.send(rows).values()} == {"ok"}
    dest.close()
    again, _ = _destination(db.dsn, batch_rows=1000)
    assert {o.status for o in again.send(rows).values()} == {"ok"}
    assert _table(db) == held

    # a change, a delete and the same delete twice: only what changed moves
    changed = _row(3, first_name="Renamed")
    deletes = [_row(5, "delete"), _row(6, "delete"), _row(5, "delete")]
    assert {o.status for o in again.send([changed, *deletes]).values()} == {"ok"}
    after = _table(db)
    assert set(after) == {r.identifier for r in rows} - {"c005", "c006"}
    assert after["c003"][1] == "Renamed" and after["c003"][3] == changed.idempotency_key
    assert after["c003"][4:] != held["c003"][4:]  # rewritten: new xmin and updated_at
    assert {k: v for k, v in after.items() if k != "c003"} == {
        k: v for k, v in held.items() if k not in ("c003", "c005", "c006")
    }
    assert {o.status for o in again.send(deletes).values()} == {"ok"}
    assert _table(db) == after
    again.close()


def test_a_bad_row_is_rejected_alone_and_the_rest_of_its_batch_lands(db):
    with db.cursor() as cur:  # a table prepared by the customer, stricter than ours
        cur.execute(
            """
            create schema audiences;
            create table audiences.strict (
                identifier text primary key,
                email text not null,
                first_name varchar(8),
                lifetime_revenue numeric,
                idempotency_key text not null,
                updated_at timestamptz not null default now()
            )
            """
        )
    dest, _ = _destination(db.dsn, table="strict", batch_rows=10)
    rows = [_row(i) for i in range(10)]
    rows[2] = _row(2, first_name="Bartholomew-Longname")  # longer than varchar(8)
    rows[6] = _row(6, email=None)  # NOT NULL
    rows[7] = _row(7, lifetime_revenue="p7-secret@example.com")  # not a number
    outcomes = dest.send(rows)

    statuses = {r.identifier: outcomes[r.idempotency_key].status for r in rows}
    assert statuses == {
        r.identifier: "rejected" if r.identifier in ("c002", "c006", "c007") else "ok" for r in rows
    }
    assert _table(db, "strict").keys() == {r.identifier for r in rows} - {"c002", "c006", "c007"}
    assert outcomes[rows[2].idempotency_key].reason == (
        "22001 string_data_right_truncation: value too long for type character varying(8)"
    )
    assert outcomes[rows[6].idempotency_key].reason == (
        '23502 not_null_violation: null value in column "email" of relation "strict" violates '
        "not-null constraint"
    )
    assert outcomes[rows[7].idempotency_key].reason == (
        '22P02 invalid_text_representation: invalid input syntax for type numeric: "<redacted>"'
    )
    reasons = " ".join(o.reason for o in outcomes.values())
    for row in rows:  # no value of any row in any reason
        assert not any(str(v) in reasons for v in [row.identifier, *row.fields.values()] if v)
    # bisected: 1 + 2 + 4 + a few single rows, not one transaction per row of a big batch
    assert dest.transactions <= 15
    assert outcomes[rows[0].idempotency_key].attempts >= 2  # it was in the refused whole batch
    dest.close()


def test_a_lost_connection_leaves_the_batch_retryable_and_it_is_resent(db):
    dest, sleeps = _destination(db.dsn, batch_rows=5, log=(logged := []).append)
    assert {o.status for o in dest.send([_row(0)]).values()} == {"ok"}
    with db.cursor() as cur:  # the server drops our connection (failover, restart, idle kill)
        cur.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where application_name = 'c360 sync pg__lapsed' and datname = current_database()"
        )
        assert cur.fetchall() == [(True,)]
    rows = [_row(i) for i in range(1, 11)]
    outcomes = dest.send(rows)

    assert {o.status for o in outcomes.values()} == {"ok"}
    assert [outcomes[r.idempotency_key].attempts for r in rows] == [2] * 5 + [1] * 5
    assert sleeps == [0.5] and logged == ["pg__lapsed: round 1: 5 rows to resend"]
    assert set(_table(db)) == {f"c{i:03d}" for i in range(11)}
    dest.close()


def test_a_stopped_server_leaves_every_row_retryable():
    with PostgresServer() as server:
        db = server.create_database("stopping")
        dest, sleeps = _destination(db.dsn, batch_rows=4)
        assert {o.status for o in dest.send([_row(0)]).values()} == {"ok"}
        server.stop()
        rows = [_row(i) for i in range(1, 11)]
        outcomes = dest.send(rows)

    assert set(outcomes) == {r.idempotency_key for r in rows}
    assert {o.status for o in outcomes.values()} == {"retryable"}
    assert all(o.reason.startswith("connection: ") for o in outcomes.values())
    assert sleeps == [0.5, 1.0]  # three rounds, then the rows stay retryable for the next run
    # never reachable at all: retryable too, no exception
    never, _ = _destination(f"host=127.0.0.1 port={free_port()} user=x dbname=x")
    assert {o.status for o in never.send(rows).values()} == {"retryable"}


def test_a_table_that_cannot_take_an_upsert_stops_the_sync(db):
    with db.cursor() as cur:
        cur.execute(
            "create schema audiences; create table audiences.no_key (identifier text, email text,"
            " first_name text, lifetime_revenue text, idempotency_key text, updated_at timestamptz)"
        )
    dest, _ = _destination(db.dsn, table="no_key")
    with pytest.raises(PostgresTableError, match="identifier needs a primary key or unique index"):
        dest.send([_row(1)])
    narrow = PostgresTableDestination(
        PostgresTableConfig(dsn=db.dsn, schema="audiences", table="no_key"), "s", ["phone"]
    )
    with pytest.raises(PostgresTableError, match=r"missing column\(s\): phone"):
        narrow.send([make_row("s", "c001", "upsert", {"phone": "+4912345678"})])


def test_from_sync_takes_the_dsn_from_env_only(db, monkeypatch):
    sync = SyncDefinition(
        name="pg__lapsed", segment="lapsed_high_value", destination="postgres_table",
        channel="email", purpose="marketing", fields={f: f for f in FIELDS}, mode="upsert",
        file_format="csv", path=Path("pg__lapsed.yml"), batch_rows=3,
        table="audiences.lapsed_high_value",
    )  # fmt: skip
    monkeypatch.delenv("C360_PG_DEST_DSN", raising=False)
    with pytest.raises(PostgresTableConfigError, match="C360_PG_DEST_DSN is not set"):
        PostgresTableDestination.from_sync(sync)
    monkeypatch.setenv("C360_PG_DEST_DSN", db.dsn + " password=hunter2")
    with PostgresTableDestination.from_sync(sync) as dest:
        assert "hunter2" not in repr(dest.config)
        assert (dest.config.schema, dest.config.table, dest.config.batch_rows) == (
            "audiences",
            "lapsed_high_value",
            3,
        )
        assert {o.status for o in dest.send([_row(1), _row(2)]).values()} == {"ok"}
    assert set(_table(db)) == {"c001", "c002"}
