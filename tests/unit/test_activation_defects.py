"""Defects of the activation engine found by a test against a server written from the published
contract alone (issue 16, core 5) — each test fails on the code before its fix:
identifiers percent-encoded on read-back, C360_WEBHOOK_MAX_IN_FLIGHT honoured, permanent rejects
parked after the sync's `max_attempts`, the failed-row share check blocking."""

from __future__ import annotations

import pytest

from orchestration.activation.destinations.webhook import (
    WebhookClient,
    WebhookConfig,
    WebhookConfigError,
    make_row,
)
from tests.webhook_server import Faults, WebhookServer

SECRET = "defects-test-secret"


# --- identifiers percent-encoded -----------------------------------------------------------


@pytest.mark.parametrize(
    "identifier", ["a#b@x.org", "a?b=c@x.org", "a/b@x.org", "50%off@x.org", "a b@x.org"]
)
def test_a_lost_delete_is_not_marked_applied_while_the_record_is_still_held(identifier):
    """A delete whose request is lost (nothing applied, no answer) is read back: the read-back
    must ask for this identifier — percent-encoded as one path segment — and find it still held,
    so the row does not end ok. Unencoded, `a#b@x.org` was read back as `a` (the rest a
    fragment): 404, so the delete was 'reconciled' while the record stayed."""
    with WebhookServer(SECRET, Faults(slow_seconds=0.4)) as server:
        config = WebhookConfig(
            server.url, SECRET, timeout_seconds=0.15, backoff_seconds=0.01, max_attempts=2
        )
        client = WebhookClient(config, "sync_a")
        added = make_row("sync_a", identifier, "upsert", {"email": identifier})
        assert client.send([added])[added.idempotency_key].status == "ok"
        assert identifier in server.state.records
        server.faults.lost_identifiers = frozenset({identifier})
        delete = make_row("sync_a", identifier, "delete", {}, generation=1)
        outcome = client.send([delete])[delete.idempotency_key]
        assert identifier in server.state.records, "the delete was lost"
        assert outcome.status != "ok", f"marked {outcome.status} ({outcome.reason})"
        # and a held upsert is reconciled by the same read-back
        server.faults.lost_identifiers = frozenset()
        assert client._read_back(added) is True


def test_the_read_back_url_encodes_the_identifier_and_keeps_the_query():
    config = WebhookConfig("http://dest/base?token=t1", SECRET)
    assert config.record_url("a#b@x.org") == "http://dest/base/v1/records/a%23b%40x.org?token=t1"
    assert config.record_url("x/y%z ü") == "http://dest/base/v1/records/x%2Fy%25z%20%C3%BC?token=t1"


# --- max in flight honoured ----------------------------------------------------------------


def _sync(tmp_path, extra: str = ""):
    from orchestration.activation.syncs import load_sync

    path = tmp_path / "webhook__lapsed_high_value.yml"
    path.write_text(
        "name: webhook__lapsed_high_value\nsegment: lapsed_high_value\ndestination: webhook\n"
        "channel: email\npurpose: marketing\nbatch_rows: 10\n"
        f"fields:\n  email: email\n{extra}"
    )
    return load_sync(path)


@pytest.mark.parametrize("limit", [1, 3])
def test_max_in_flight_from_env_reaches_the_client_the_sync_gets(tmp_path, monkeypatch, limit):
    """C360_WEBHOOK_MAX_IN_FLIGHT was read by WebhookConfig.from_env, then lost when the
    destination factory built the sync's config from parts (always 2 in flight)."""
    from orchestration.activation.destinations.factory import make_destination

    monkeypatch.setenv("C360_WEBHOOK_URL", "http://dest")
    monkeypatch.setenv("C360_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("C360_WEBHOOK_MAX_IN_FLIGHT", str(limit))
    client = make_destination(_sync(tmp_path), lambda message: None)
    assert client.config.max_in_flight == limit
    assert client.config.max_rows == 10, "the sync's own limit still applies"


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_bad_max_in_flight_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("C360_WEBHOOK_URL", "http://dest")
    monkeypatch.setenv("C360_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("C360_WEBHOOK_MAX_IN_FLIGHT", value)
    with pytest.raises(WebhookConfigError, match="C360_WEBHOOK_MAX_IN_FLIGHT"):
        WebhookConfig.from_env()


@pytest.mark.parametrize("limit", [1, 2])
def test_the_destination_never_sees_more_batches_at_once_than_max_in_flight(monkeypatch, limit):
    """Measured at the server: batches answered slowly pile up to the limit and never past it."""
    monkeypatch.setenv("C360_WEBHOOK_MAX_IN_FLIGHT", str(limit))
    rows = [make_row("sync_a", f"c{i:03d}", "upsert", {"email": f"{i}@x.org"}) for i in range(40)]
    with WebhookServer(SECRET, Faults(delay_seconds=0.05)) as server:
        client = WebhookClient(WebhookConfig(server.url, SECRET, max_rows=4), "sync_a")
        outcomes = client.send(rows)
    assert all(o.status == "ok" for o in outcomes.values()) and server.batch_requests == 10
    assert server.max_in_flight == limit


# --- the failed-row share check blocking ---------------------------------------------------


@pytest.mark.parametrize("failed, passed", [(16, False), (53, False), (3, True)])
def test_a_failed_row_share_over_the_limit_fails_the_run_and_stops_what_is_downstream(
    tmp_path, monkeypatch, failed, passed
):
    """Runs with 16 % and 53 % failed rows reported success (the check was not blocking): now
    the check fails the run, what depends on the syncs is not built, and 3 % passes."""
    import dagster as dg
    import duckdb

    from orchestration.activation.records import ensure_tables
    from orchestration.defs.activation.platform_syncs import KEY, failed_row_share
    from orchestration.defs.resources import Warehouse

    monkeypatch.delenv("C360_SYNC_MAX_FAILED_SHARE", raising=False)
    spec = next(iter(failed_row_share.check_specs))
    assert spec.blocking, "failed_row_share is a blocking check"
    warehouse = tmp_path / "warehouse.duckdb"

    @dg.asset(key=KEY)
    def syncs(context):  # what platform_syncs records of its run
        with duckdb.connect(str(warehouse)) as con:
            ensure_tables(con)
            con.execute(
                "insert into activation.sync_runs (sync_run_id, run_id, sync_id, destination, "
                "segment_name, as_of, status, audience_rows, planned, already_sent, sent, ok, "
                "rejected, retryable, unknown, held_out, filtered, started_at, finished_at, "
                "duration_seconds) values ('r1', ?, 'webhook__a', 'webhook', 'seg', "
                "date '2026-11-20', 'partial', 100, 100, 0, 100, ?, ?, 0, 0, 0, 0, now(), now(), 1)",
                [context.run.run_id, 100 - failed, failed],
            )

    @dg.asset(deps=[KEY])
    def downstream() -> None:
        pass

    result = dg.materialize(
        [syncs, failed_row_share, downstream],
        resources={"warehouse": Warehouse(path=str(warehouse), landing_dir=str(tmp_path))},
        raise_on_error=False,
    )
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed is passed
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert ("downstream" in built) is passed, "a failing check stops what is downstream"
    assert result.success is passed, "a run over the limit does not report success"
