"""Erasure reaches destinations (issue 16, core 3): a person held by a Braze sync (its
activation.sync_state row) is erased there with /users/delete on a local Braze server written
from Braze's documentation; the answer is the receipt's acknowledgement, the state row goes. A
refused delete is acknowledged as refused and the request stays `destinations_pending`."""

import datetime as dt
import json

import duckdb
import pytest

from orchestration.activation.diff import STATE_DDL
from orchestration.privacy.destinations import send_deletes
from orchestration.privacy.erasure import erase_pending
from orchestration.privacy.keys import keyed_hash
from tests.servers.braze import BrazeServer

pytestmark = [pytest.mark.integration]

KEY = "braze-test-key-erasure"
SYNC = """name: braze__erasure
description: Erasure test sync.
segment: lapsed_high_value
destination: braze
channel: email
purpose: marketing
mode: mirror
identifier: customer_id
fields:
  email: email
config:
  endpoint: {url}
  api_key_env: C360_TEST_BRAZE_ERASE_KEY
  subscription_group_id: sg-erase
  timeout_seconds: 2
"""


def _warehouse(path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(STATE_DDL)
    for customer in ("CUST9", "CUST1"):
        con.execute(
            "insert into activation.sync_state (sync_id, identifier, row_hash, status, attempts, "
            "created_by_sync, updated_as_of, customer_id, generation) values "
            "('braze__erasure', ?, 'h', 'ok', 1, true, date '2026-11-20', ?, 1)",
            [customer, customer],
        )
    return con


@pytest.fixture
def braze(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_ERASURE_KEY", "destinations-test-key-" + "y" * 20)
    monkeypatch.setenv("C360_SYNCS_DIR", str(tmp_path / "syncs"))
    monkeypatch.setenv("C360_TEST_BRAZE_ERASE_KEY", KEY)
    with BrazeServer(KEY) as server:
        (tmp_path / "syncs").mkdir()
        (tmp_path / "syncs" / "braze__erasure.yml").write_text(SYNC.format(url=server.url))
        server.users["CUST9"] = {"external_id": "CUST9", "email": "gone@example.org"}
        server.users["CUST1"] = {"external_id": "CUST1", "email": "kept@example.org"}
        yield server


def test_the_platform_erases_the_person_and_the_answer_is_acknowledged(tmp_path, braze):
    with _warehouse(tmp_path / "wh.duckdb") as con:
        acks = send_deletes(con, "R1", {"CUST9"}, {"gone@example.org"})
        state = con.execute("select identifier from activation.sync_state").fetchall()
    assert [(a.sync, a.destination, a.how, a.status) for a in acks] == [
        ("braze__erasure", "braze", "delete", "ok")
    ]
    assert acks[0].identifier_hash == keyed_hash("identifier", "CUST9")
    assert braze.deleted == ["CUST9"] and set(braze.users) == {"CUST1"}
    assert state == [("CUST1",)]


def test_a_refused_delete_keeps_the_state_and_leaves_the_request_pending(
    tmp_path, braze, monkeypatch
):
    monkeypatch.setenv("C360_TEST_BRAZE_ERASE_KEY", "not-the-key")  # Braze answers 401
    with _warehouse(tmp_path / "wh.duckdb") as con:
        con.execute("create schema raw")
        con.execute(
            "create table raw.consent__erasure_requests (erasure_request_id varchar, "
            "contact_point varchar, contact_point_type varchar, requested_at timestamp)"
        )
        con.execute(
            "insert into raw.consent__erasure_requests values "
            "('ER7', 'CUST9', 'customer_id', timestamp '2026-11-21 08:00:00')"
        )
        summary = erase_pending(
            con, dt.date(2026, 11, 21), landing=tmp_path / "l", outbox=tmp_path / "o"
        )
        status, destinations = con.execute(
            "select status, destinations from audit.erasure_receipts"
        ).fetchone()
        state = con.execute("select count(*) from activation.sync_state").fetchone()[0]
    assert summary.destinations_pending == 1 and status == "destinations_pending"
    (ack,) = json.loads(destinations)
    # refused credentials stop the client: the acknowledgement names the error, never the key
    assert ack["sync"] == "braze__erasure" and ack["status"] == "error"
    assert ack["reason"] == "PlatformAuthError" and "not-the-key" not in destinations
    assert "CUST9" in braze.users and state == 2
