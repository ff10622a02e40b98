"""A postgres_table sync end to end through the diff runner and the destination factory, against
a real Postgres: the table holds exactly the consented, non-holdout audience; a consent
withdrawal, a merge and a member leaving a mirror sync each remove one row; an unchanged rerun
sends nothing."""

import datetime as dt

import duckdb
import pytest

from orchestration.activation.destinations.factory import make_destination
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from tests.e2e.pg import PgDatabase, PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]
AS_OF = dt.date(2026, 11, 21)

SYNC = """name: pg__seg
segment: seg
destination: postgres_table
table: audiences.seg
channel: email
purpose: marketing
mode: mirror
max_remove_share: 0.5
batch_rows: 4
fields:
  email: email
  first_name: first_name
"""


def _warehouse() -> duckdb.DuckDBPyConnection:
    """30 members of `seg`: 3 held out (0, 10, 20), one without an email (3), one revoked (5)."""
    con = duckdb.connect()
    con.execute(
        """
        create schema marts;
        create table marts.segment_membership as
            select 'seg' as segment_name, 'c' || lpad(i::varchar, 2, '0') as customer_id,
                i % 10 = 0 as is_holdout
            from range(30) as t (i);
        create table marts.customer_360 as
            select 'c' || lpad(i::varchar, 2, '0') as customer_id,
                case when i <> 3 then 'p' || i || '@example.com' end as email,
                null::varchar as phone, false as is_erased, 'Name' || i as first_name
            from range(30) as t (i);
        create table marts.consent_state as
            select 'p' || i || '@example.com' as contact_point, 'email' as channel,
                'marketing' as purpose,
                case when i = 5 then 'revoked' else 'granted' end as consent_status,
                timestamp '2026-01-01' as consent_captured_at, false as is_expired,
                false as is_suppressed, i <> 5 as is_consented
            from range(30) as t (i);
        create table marts.customer_id_history (
            retired_customer_id varchar, current_customer_id varchar
        );
        """
    )
    return con


def _held(db: PgDatabase) -> dict[str, str]:
    with db.cursor() as cur:
        cur.execute("select identifier, email from audiences.seg")
        return dict(cur.fetchall())


def test_postgres_table_sync_keeps_exactly_the_audience(pg_server: PostgresServer, tmp_path,
                                                        monkeypatch):  # fmt: skip
    db = pg_server.create_database("pg_sync")
    monkeypatch.setenv("C360_PG_DEST_DSN", db.dsn)
    path = tmp_path / "pg__seg.yml"
    path.write_text(SYNC)
    sync = load_sync(path, segments={"seg"})  # the test's own segment
    con = _warehouse()

    def run(run_id: str):
        destination = make_destination(sync, lambda message: None)
        try:
            return run_diff_sync(con, sync, AS_OF, run_id, destination, chunk_rows=10)
        finally:
            destination.close()

    first = run("run-1")
    audience = {f"c{i:02d}" for i in range(30)} - {"c00", "c10", "c20", "c03", "c05"}
    assert _held(db) == {c: f"p{int(c[1:])}@example.com" for c in audience}
    assert (first.sent, first.ok, first.held_out, first.filtered) == (25, 25, 3, 2)

    # c07 revokes consent, c08 is merged into c09, c11 leaves the segment (mirror removes it)
    con.execute(
        "update marts.consent_state set consent_status = 'revoked', is_consented = false "
        "where contact_point = 'p7@example.com'"
    )
    con.execute("insert into marts.customer_id_history values ('c08', 'c09')")
    con.execute("delete from marts.customer_360 where customer_id = 'c08'")
    con.execute("delete from marts.segment_membership where customer_id in ('c08', 'c11')")
    second = run("run-2")
    assert set(_held(db)) == audience - {"c07", "c08", "c11"}
    assert (second.sent, second.ok) == (3, 3)
    removals = con.execute(
        "select customer_id, outcome, error_message from activation.contact_history "
        "where run_id = 'run-2' and outcome = 'ok' order by 1"
    ).fetchall()
    assert removals == [("c07", "ok", "removed"), ("c08", "ok", "removed"),
                        ("c11", "ok", "removed")]  # fmt: skip

    third = run("run-3")
    assert third.sent == 0 and set(_held(db)) == audience - {"c07", "c08", "c11"}
