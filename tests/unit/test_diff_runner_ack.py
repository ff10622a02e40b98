"""run_diff_sync's acknowledgements against a state that moves under them: a sync_state row
written for an identifier after its chunk was read (and before its acknowledgement) must not
fail the sync, and the row is counted on from the state as it is then."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pytest

from orchestration.activation.destinations.rows import EncodedRows, Outcome, Row
from orchestration.activation.diff_runner import run_diff_sync

BENCH = Path(__file__).resolve().parents[2] / "bench" / "activation_sync.py"


def _bench():
    """bench/activation_sync.py (not a package): its synthesised marts and sync definition."""
    spec = importlib.util.spec_from_file_location("activation_sync_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StateWritingDestination:
    """Accepts every row; while the second chunk is at the destination, another writer puts a
    state row for that chunk's first identifier (as a concurrent acknowledgement would)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sync_id: str) -> None:
        self.writer, self.sync_id, self.chunks = con.cursor(), sync_id, 0
        self.injected: str | None = None

    def _chunk(self, identifiers: list[str], keys: list[str]) -> dict[str, Outcome]:
        self.chunks += 1
        if self.chunks == 2:
            self.injected = identifiers[0]
            self.writer.execute(
                "insert into activation.sync_state (sync_id, identifier, row_hash, status, "
                "attempts, last_error, created_by_sync, updated_as_of, customer_id, generation, "
                "last_action) values "
                "(?, ?, 'h', 'retryable', 4, 'HTTP 503', false, date '2026-11-20', null, 2, "
                "'update')",
                [self.sync_id, self.injected],
            )
        return {key: Outcome("ok", "", 1) for key in keys}

    def send(self, rows: Iterable[Row]) -> dict[str, Outcome]:
        rows = list(rows)
        return self._chunk([r.identifier for r in rows], [r.idempotency_key for r in rows])


class EncodedStateWritingDestination(StateWritingDestination):
    """The same, taking the runner's SQL-encoded rows (WebhookClient's fast path)."""

    def send_encoded(self, rows: EncodedRows) -> dict[str, Outcome]:
        return self._chunk(list(rows.identifiers()), list(rows.keys))


@pytest.mark.parametrize("ack_rows", [100, 250], ids=["ack_each_chunk", "ack_three_chunks"])
@pytest.mark.parametrize("destination", [StateWritingDestination, EncodedStateWritingDestination])
def test_a_state_row_appearing_between_plan_and_ack_does_not_fail_the_sync(destination, ack_rows):
    bench = _bench()
    con = duckdb.connect()
    bench.synthesise(con, 300)
    sync = bench.SYNC
    dest = destination(con, sync.name)
    out = run_diff_sync(con, sync, bench.AS_OF, "run-1", dest, chunk_rows=100, ack_rows=ack_rows)
    assert dest.injected is not None and dest.chunks >= 2
    assert out.status == "success" and out.ok == out.sent > 200
    state = con.execute(
        "select count(*), count(*) filter (where status = 'ok'), sum(generation) "
        "from activation.sync_state where sync_id = ?",
        [sync.name],
    ).fetchone()
    # every row acknowledged once; the injected row was at generation 2, now 3
    assert state == (out.sent, out.sent, out.sent + 2)
    injected = con.execute(
        "select attempts, generation, created_by_sync, status from activation.sync_state "
        "where sync_id = ? and identifier = ?",
        [sync.name, dest.injected],
    ).fetchone()
    assert injected == (5, 3, False, "ok")
    history = con.execute(
        "select count(*) from activation.contact_history where run_id = 'run-1' and outcome = 'ok'"
    ).fetchone()[0]
    assert history == out.sent
    assert con.execute(
        "select count(*) from activation.sync_plan where outcome is null"
    ).fetchone() == (0,)
