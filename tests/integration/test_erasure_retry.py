"""Pending destination deletes are retried (issue 16, core 3): a delete the local Braze server
refused leaves the receipt `destinations_pending`; the nightly retry sends it again until Braze
acknowledges it (receipt `done`, the person gone at Braze and from sync_state), or, after the
bounded attempts, reports it `failed` (receipt `destinations_failed`)."""

import datetime as dt
import json

import pytest

from orchestration.privacy.erasure import erase_pending
from orchestration.privacy.retry import retry_pending
from tests.integration.test_erasure_destinations import KEY, _warehouse, braze  # noqa: F401

pytestmark = [pytest.mark.integration]


def _erase_refused(con, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("C360_TEST_BRAZE_ERASE_KEY", "not-the-key")  # Braze answers 401
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
    assert summary.destinations_pending == 1


def _receipt(con):
    status, destinations = con.execute(
        "select status, destinations from audit.erasure_receipts where request_id = 'ER7'"
    ).fetchone()
    return status, json.loads(destinations)


def test_a_refused_delete_is_retried_until_braze_acknowledges_it(tmp_path, braze, monkeypatch):  # noqa: F811
    with _warehouse(tmp_path / "wh.duckdb") as con:
        _erase_refused(con, tmp_path, monkeypatch)
        # the next night Braze still refuses: still pending, one more attempt counted
        again = retry_pending(con, attempts=5)
        status, (ack,) = _receipt(con)
        assert (again.receipts, again.acknowledged, status) == (1, 0, "destinations_pending")
        assert ack["attempts"] == 2 and ack["status"] == "error"
        assert "CUST9" in braze.users
        # then it accepts
        monkeypatch.setenv("C360_TEST_BRAZE_ERASE_KEY", KEY)
        done = retry_pending(con, attempts=5)
        status, (ack,) = _receipt(con)
        state = con.execute("select identifier from activation.sync_state").fetchall()
        # nothing left to retry on the night after
        after = retry_pending(con, attempts=5)
    assert (done.acknowledged, done.still_pending, status) == (1, 0, "done")
    assert ack["status"] == "ok" and ack["attempts"] == 3
    assert braze.deleted == ["CUST9"] and "CUST9" not in braze.users
    assert state == [("CUST1",)]
    assert after.receipts == 0


def test_a_delete_refused_for_every_attempt_is_reported_failed(tmp_path, braze, monkeypatch):  # noqa: F811
    with _warehouse(tmp_path / "wh.duckdb") as con:
        _erase_refused(con, tmp_path, monkeypatch)
        first = retry_pending(con, attempts=3)
        second = retry_pending(con, attempts=3)
        status, (ack,) = _receipt(con)
        third = retry_pending(con, attempts=3)
    assert (first.failed, second.failed) == (0, 1)
    assert status == "destinations_failed" and ack["status"] == "failed" and ack["attempts"] == 3
    assert ack["reason"] == "PlatformAuthError"
    assert third.receipts == 0 and "CUST9" in braze.users
