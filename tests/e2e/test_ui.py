"""The Dagster UI that `make ui` serves after a small demo (one night): every asset grouped, owned
and described, every table asset with its row count and no partition bar at 0 % (GraphQL), and
headless Chromium rendering the asset graph with every group visible and an asset's row count."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from orchestration.engine.ports import free_port
from orchestration.paths import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="ui")]
GROUPS = {
    "ingestion", "staging", "identity", "customer_360", "segments", "activation", "insight", "privacy",
}  # fmt: skip
ARTIFACTS = Path(__file__).parent / "artifacts"
DEMO_NIGHT = "2026-11-21"
# assets whose materialization is not a warehouse table: files, platform audiences, a report
NOT_TABLES = {"csv", "api", "html"}


def _graphql(base: str, query: str) -> dict:
    req = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.loads(resp.read())
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui_home")
    env = os.environ | {
        "C360_HOME": str(home), "C360_WAREHOUSE": str(home / "warehouse.duckdb"),
        "C360_LANDING_DIR": str(home / "landing"), "C360_OUTBOX_DIR": str(home / "outbox"),
        "C360_DUCKDB_TEMP_DIR": str(home / "tmp"), "DAGSTER_HOME": str(home / "dagster"),
        "C360_SCHEDULES": "off",  # a development UI: nothing starts on its own
    }  # fmt: skip
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "python"), "-c", "from orchestration.instance import ensure_instance; ensure_instance()"],
        env=env, check=True, cwd=REPO_ROOT,
    )  # fmt: skip
    # a small demo, then the partitions start at its first night, as `make ui` does
    for args in (
        ["generate", "--customers", "120", "--seed", "3", "--as-of", DEMO_NIGHT],
        ["run", "--as-of", DEMO_NIGHT],
    ):
        done = subprocess.run(
            [str(bin_dir / "c360"), *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first = subprocess.run(
        [str(bin_dir / "python"), "-m", "orchestration.first_night"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert first == DEMO_NIGHT
    env["C360_PARTITIONS_START"] = first
    port = free_port()
    log = (home / "webserver.log").open("w")
    proc = subprocess.Popen(
        [str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/server_info", timeout=5).read()
                data = _graphql(base, "{ repositoriesOrError { __typename } }")
                if data["repositoriesOrError"]["__typename"] == "RepositoryConnection":
                    break
            except (OSError, AssertionError):
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    "webserver did not start:\n" + (home / "webserver.log").read_text()[-3000:]
                )
            time.sleep(1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_every_asset_has_group_owner_and_description(webserver):
    data = _graphql(
        webserver,
        """{ assetNodes { assetKey { path } groupName description
             owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } } } }""",
    )
    nodes = data["assetNodes"]
    assert len(nodes) > 40
    bad = [
        n["assetKey"]["path"]
        for n in nodes
        if not n["groupName"] or not n["owners"] or not n["description"]
    ]
    assert not bad
    assert {n["groupName"] for n in nodes} == GROUPS


def test_nightly_job_schedules_and_sensors_are_served_stopped_in_development(webserver):
    data = _graphql(
        webserver,
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } "
        "schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } }",
    )
    repo = data["repositoriesOrError"]["nodes"][0]
    assert "nightly" in {j["name"] for j in repo["jobs"]}
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]}
    assert schedules == {"nightly_schedule": "STOPPED", "activation_schedule": "STOPPED"}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
    assert sensors["landing_files_sensor"] == "STOPPED"
    assert sensors["run_failure_alert"] == "RUNNING"


def _dbt_views() -> set[str]:
    manifest = json.loads((REPO_ROOT / "dbt_project/target/manifest.json").read_text())
    return {
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"]["materialized"] == "view"
    }


def _assets_after_the_demo(base: str) -> list[dict]:
    return _graphql(
        base,
        """{ assetNodes { assetKey { path } kinds isPartitioned
             partitionStats { numMaterialized numPartitions }
             assetMaterializations(limit: 1) { metadataEntries { label } } } }""",
    )["assetNodes"]


def test_every_table_asset_shows_its_row_count_after_a_demo(webserver):
    views = _dbt_views()
    tables = [
        n
        for n in _assets_after_the_demo(webserver)
        if n["assetMaterializations"]
        and "duckdb" in n["kinds"]
        and not NOT_TABLES & set(n["kinds"])
        and n["assetKey"]["path"][-1] not in views
    ]
    assert len(tables) > 60, len(tables)
    missing = [
        "/".join(n["assetKey"]["path"])
        for n in tables
        if "dagster/row_count"
        not in {e["label"] for e in n["assetMaterializations"][0]["metadataEntries"]}
    ]
    assert not missing, f"table assets without dagster/row_count: {missing}"


def test_no_materialized_asset_reads_0_percent_filled_after_a_demo(webserver):
    partitioned = [
        n
        for n in _assets_after_the_demo(webserver)
        if n["isPartitioned"] and n["assetMaterializations"]
    ]
    assert partitioned
    # partitions start at the demo's night: one night of a fortnight is not "0 %" (1,068 days was)
    empty = [
        ("/".join(n["assetKey"]["path"]), n["partitionStats"])
        for n in partitioned
        if n["partitionStats"]["numMaterialized"] < 1
        or n["partitionStats"]["numMaterialized"] / n["partitionStats"]["numPartitions"] < 0.005
    ]
    assert not empty, empty


def _chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium missing: `make test` installs Debian's chromium package"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={user_dir}", "--virtual-time-budget=15000", "--window-size=1800,1100",
    ]  # fmt: skip
    return subprocess.run(
        [exe, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_chromium_renders_the_asset_graph_with_every_group(webserver, tmp_path):
    _graphql(webserver, "mutation { setNuxSeen }")  # dismiss the "Join the community" popup
    url = f"{webserver}/asset-groups"
    dom = _chromium("--dump-dom", url, user_dir=tmp_path / "u1").stdout
    missing = [g for g in GROUPS if g not in dom]
    assert not missing, f"groups not rendered: {missing}"
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "asset_graph.png"
    png.unlink(missing_ok=True)
    _chromium(f"--screenshot={png}", url, user_dir=tmp_path / "u2")
    assert png.exists() and png.stat().st_size > 20_000


def test_chromium_renders_an_asset_page_with_its_row_count(webserver, tmp_path):
    _graphql(webserver, "mutation { setNuxSeen }")
    dom = _chromium(
        "--dump-dom", f"{webserver}/assets/marts/customer_360", user_dir=tmp_path / "u3"
    ).stdout
    data = _graphql(
        webserver,
        """{ assetOrError(assetKey: {path: ["marts", "customer_360"]}) { ... on Asset {
             assetMaterializations(limit: 1) { metadataEntries { label
               ... on IntMetadataEntry { intValue } } } } } }""",
    )
    entries = data["assetOrError"]["assetMaterializations"][0]["metadataEntries"]
    rows = next(e["intValue"] for e in entries if e["label"] == "dagster/row_count")
    assert rows > 0  # the demo's customers
    assert "Row count" in dom, dom[-2000:]
    assert f"{rows:,}" in dom or str(rows) in dom, dom[-2000:]
