"""Diff-based syncs as Dagster assets: in the nightly (after the marts, with a failed-row-share
check) and in the `activation` job on its own schedule — which retries what a platform refused,
checked on the local contract server's own state."""

import duckdb
import pytest

from tests.integration.conftest import AS_OF, make_home
from tests.integration.test_webhook_sync import SYNC, _expected
from tests.webhook_server import Faults, WebhookServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="activation_job")]
SECRET = "job-test-secret"


def test_platform_syncs_in_the_nightly_and_on_the_activation_schedule(tmp_path, monkeypatch):
    import dagster as dg

    from demo.generator import generate
    from orchestration.definitions import defs
    from orchestration.defs.automation import activation_schedule
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch, storage="sqlite")  # the schedule reads the runs
    generate(300, 21, AS_OF, home.landing, home.truth, progress=None)
    folder = tmp_path / "syncs"
    folder.mkdir()
    (folder / "webhook__lapsed_high_value.yml").write_text(SYNC)
    monkeypatch.setenv("C360_SYNCS_DIR", str(folder))
    monkeypatch.setenv("C360_WEBHOOK_SECRET", SECRET)
    # the platform refuses every row for now (temporarily: 'retryable')
    with WebhookServer(SECRET, Faults(retryable_rate=1.0)) as server:
        monkeypatch.setenv("C360_WEBHOOK_URL", server.url)
        nightly = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
        # the failed-row share check is blocking: the night does not report success
        assert not nightly.success
        assert "activation/platform_syncs" in nightly.materialized
        assert nightly.checks_failed == ["activation/platform_syncs:failed_row_share"]
        assert not server.state.records

        # only activation failed, the marts are complete: the activation schedule retries
        request = activation_schedule(dg.build_schedule_context(instance=home.instance))
        assert isinstance(request, dg.RunRequest) and request.partition_key == AS_OF.isoformat()
        server.faults.retryable_rate = 0.0  # the platform recovers
        result = (
            defs()
            .resolve_job_def("activation")
            .execute_in_process(
                instance=home.instance, partition_key=request.partition_key, raise_on_error=False
            )
        )
        assert result.success
        checks = {
            e.event_specific_data.check_name: e.event_specific_data.passed
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
        assert checks == {"failed_row_share": True}
        with duckdb.connect(str(home.warehouse), read_only=True) as con:
            expected = _expected(con)
            runs = con.execute(
                "select count(*), sum(retryable), sum(ok) from activation.sync_runs "
                "where sync_id = 'webhook__lapsed_high_value'"
            ).fetchone()
        assert expected and set(server.state.records) == expected, "retried rows delivered"
        assert runs == (2, len(expected), len(expected))


def test_platform_syncs_fail_clearly_without_a_configured_endpoint(tmp_path, monkeypatch):
    import dagster as dg

    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(150, 22, AS_OF, home.landing, home.truth, progress=None)
    folder = tmp_path / "syncs"
    folder.mkdir()
    (folder / "webhook__lapsed_high_value.yml").write_text(SYNC)
    monkeypatch.setenv("C360_SYNCS_DIR", str(folder))
    monkeypatch.delenv("C360_WEBHOOK_URL", raising=False)
    report = run_nightly(AS_OF, instance=home.instance, log_level="CRITICAL")
    assert not report.success
    assert "activation/platform_syncs" not in report.materialized
    assert "marts/customer_360" in report.materialized, "only activation stops"
    run_id = home.instance.get_runs(limit=1)[0].run_id
    failures = [
        record.dagster_event.event_specific_data.error.message
        for record in home.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]
    assert any(
        "webhook__lapsed_high_value: C360_WEBHOOK_URL is not set" in message for message in failures
    ), failures
