"""The code location loads without side effects; every asset is grouped, owned and described."""

import json
import subprocess
import sys

import dagster as dg
import pytest

from orchestration.paths import REPO_ROOT


@pytest.fixture
def defs(tmp_path, monkeypatch):
    for var in ("C360_WAREHOUSE", "C360_LANDING_DIR", "C360_OUTBOX_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    from orchestration.definitions import defs as load

    return load()


def test_every_asset_has_group_owner_and_description(defs):
    specs = list(defs.resolve_all_asset_specs())
    assert len(specs) > 40
    missing = [
        s.key.to_user_string()
        for s in specs
        if not s.group_name or s.group_name == "default" or not s.owners or not s.description
    ]
    assert not missing


def test_raw_asset_keys_equal_dbt_source_keys(defs):
    from orchestration.contracts.model import all_source_contracts

    keys = {s.key.to_user_string() for s in defs.resolve_all_asset_specs()}
    for c in all_source_contracts():
        assert f"{c.source}/{c.entity}" in keys
    graph = defs.resolve_asset_graph()
    stg = graph.get(
        next(k for k in graph.get_all_asset_keys() if k.path[-1] == "stg_crm__contacts")
    )
    assert ["crm", "contacts"] in [list(k.path) for k in stg.parent_keys]


def test_nightly_job_runs_in_process_and_every_writer_is_in_the_duckdb_pool(defs):
    job = defs.resolve_job_def("nightly")
    assert job.executor_def.name == "in_process"
    for node in job.graph.node_defs:
        assert getattr(node, "pool", None) == "duckdb", node.name


def test_importing_the_code_location_has_no_side_effects(tmp_path):
    """No dbt parse, no GX import, no warehouse file on import."""
    code = (
        "import sys, orchestration.definitions as d; d.defs();"
        "print('great_expectations' in sys.modules)"
    )
    env = {"PATH": "/usr/bin:/bin", "C360_HOME": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=True,
    )
    assert out.stdout.strip().endswith("False")
    assert not list(tmp_path.rglob("*.duckdb"))


def test_staged_and_raw_assets_of_an_entity_are_told_apart(defs):
    """The UI labels both `contacts`: kind, layer tag, table name and description differ."""
    from orchestration.contracts.model import all_source_contracts
    from orchestration.defs.ingestion.factory import LAYER_TAG

    specs = {s.key: s for s in defs.resolve_all_asset_specs()}
    for c in all_source_contracts():
        staged = specs[dg.AssetKey(["staged", c.source, c.entity])]
        raw = specs[dg.AssetKey(c.asset_key_path)]
        assert (staged.tags[LAYER_TAG], raw.tags[LAYER_TAG]) == ("staged", "raw")
        assert "staging" in staged.kinds and "staging" not in raw.kinds
        assert "table" in raw.kinds and "table" not in staged.kinds
        assert staged.metadata["dagster/table_name"] != raw.metadata["dagster/table_name"]
        assert raw.metadata["dagster/table_name"] == f"raw.{c.id}"
        assert staged.description.startswith("Staged batch of ")
        assert raw.description.startswith(f"Raw table raw.{c.id}")


def test_schedule_status_follows_c360_schedules():
    from orchestration.defs.automation import schedule_status

    assert schedule_status({}) == dg.DefaultScheduleStatus.STOPPED
    assert schedule_status({"C360_SCHEDULES": "off"}) == dg.DefaultScheduleStatus.STOPPED
    for on in ("on", "ON", "1", "true"):
        assert schedule_status({"C360_SCHEDULES": on}) == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize(("value", "expected"), [(None, "STOPPED"), ("on", "RUNNING")])
def test_schedules_and_landing_sensor_start_stopped_unless_a_deployment_turns_them_on(
    tmp_path, value, expected
):
    """Read at load: the code location as `make ui` and a deployment load it."""
    code = (
        "import json, orchestration.definitions as d; defs = d.defs();"
        "print(json.dumps({s.name: s.default_status.value for s in [*defs.schedules, "
        "*defs.sensors] if s.name != 'release_dead_runs_sensor'}))"
    )
    env = {"PATH": "/usr/bin:/bin", "C360_HOME": str(tmp_path), "HOME": str(tmp_path)}
    if value is not None:
        env["C360_SCHEDULES"] = value
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
        check=True,
    )  # fmt: skip
    statuses = json.loads(out.stdout.strip().splitlines()[-1])
    assert statuses == {
        "nightly_schedule": expected,
        "activation_schedule": expected,
        "landing_files_sensor": expected,
        "run_failure_alert": "RUNNING",  # launches nothing: alerts in development too
    }


# The Python assets of defs/ingestion, defs/insight (but next_best_action and lift),
# identity_health and segment_stats: the dbt asset carries dbt's own versions.
VERSIONED = {
    "identity_state/graph_health",
    "segments/stats",
    "marts/customer_clv",
    "marts/customer_send_time",
    "marts/customer_lead_score",
    "marts/customer_360_insight",
    "reports/marketer_report",
    "reference/phone_numbers",
    "identity/probabilistic_links",
    "identity_state/identity_model",
    "marts/campaign_lift",
    "marts/kpi_segment_value",
    "marts/next_best_action",
    "privacy/erasure",
}


def test_python_assets_carry_a_code_version_of_their_sources(defs):
    from orchestration.contracts.model import all_source_contracts

    versions = {s.key.to_user_string(): s.code_version for s in defs.resolve_all_asset_specs()}
    keys = set(VERSIONED)
    for c in all_source_contracts():
        keys |= {f"staged/{c.source}/{c.entity}", f"{c.source}/{c.entity}"}
    missing = sorted(k for k in keys if not versions.get(k))
    assert not missing
    # each source's assets are versioned by its own contract too
    assert versions["crm/contacts"] == versions["staged/crm/contacts"]
    assert versions["crm/contacts"] != versions["shop/orders"]
    assert versions["marts/customer_clv"] != versions["marts/customer_send_time"]


def test_a_code_version_changes_with_any_of_its_sources(tmp_path):
    from orchestration.asset_args import code_version

    logic, contract = tmp_path / "logic.py", tmp_path / "c.odcs.yaml"
    logic.write_text("x = 1\n")
    contract.write_text("a: 1\n")
    first = code_version(logic, contract)
    assert code_version(logic, contract) == first and len(first) == 12
    contract.write_text("a: 2\n")
    second = code_version(logic, contract)
    logic.write_text("x = 2\n")
    assert len({first, second, code_version(logic, contract)}) == 3


def test_nightly_asset_gives_every_python_asset_the_shared_arguments():
    from orchestration.asset_args import nightly_asset
    from orchestration.defs.ingestion.factory import build_source_defs
    from orchestration.defs.insight import clv, customer_360_insight, lead_score, report, send_time
    from orchestration.defs.transform import identity_health, segment_stats
    from orchestration.run_model import ONE_DAY_PER_RUN, OWNER, nightly_partitions

    @nightly_asset(key=["t", "x"], group_name="g", description="d", sources=(__file__,))
    def x() -> None: ...

    assets = [
        x,
        identity_health.identity_graph_health,
        segment_stats.segment_stats,
        clv.customer_clv,
        send_time.customer_send_time,
        lead_score.customer_lead_score,
        customer_360_insight.customer_360_insight,
        report.marketer_report,
        *build_source_defs("crm").assets,
    ]
    for a in assets:
        (spec,) = a.specs
        assert spec.owners == [OWNER], a.key
        assert a.partitions_def == nightly_partitions and a.backfill_policy == ONE_DAY_PER_RUN
        assert a.op.pool == "duckdb" and spec.code_version, a.key
    assert x.specs_by_key[dg.AssetKey(["t", "x"])].kinds == {"duckdb", "python"}
    assert "scikitlearn" in lead_score.customer_lead_score.specs_by_key[lead_score.KEY].kinds
