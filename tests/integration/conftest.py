"""One generated dataset (~2k customers) and one nightly run per test session, shared by the
integration tests (they only read it). Tests that change data use their own homes.

Scheduling (`pytest -n 2 --dist loadgroup`): the modules that read the shared run carry
`xdist_group(name="pipeline")`, so it is built once, on one worker. A module with a home of its
own is its own group (named after the module): its module fixture is built once, and the other
worker can take it while the shared run's readers are busy."""

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dagster as dg
import pytest
import yaml

from orchestration.instance import INSTANCE_YAML

AS_OF = dt.date(2026, 11, 21)
CUSTOMERS = 2000
SEED = 11


@dataclass
class PipelineHome:
    home: Path
    landing: Path
    truth: Path
    warehouse: Path
    outbox: Path
    instance: dg.DagsterInstance


def memory_instance() -> dg.DagsterInstance:
    """Dagster's in-memory instance (what `dg.materialize` runs on) with the home's pools: a
    test's runs in its own process skip the SQLite storage, which opens an engine and commits on
    every event (about a fifth of a small night). The run lifecycle itself (killed runs, the
    run lock, the CLI, the UI) is tested on the home's SQLite instance."""
    concurrency = yaml.safe_load(INSTANCE_YAML.format(base="."))["concurrency"]
    return dg.DagsterInstance.ephemeral(settings={"concurrency": concurrency})


def make_home(
    root: Path,
    monkeypatch: pytest.MonkeyPatch | None = None,
    storage: Literal["memory", "sqlite"] = "memory",
) -> PipelineHome:
    """A fresh C360_HOME with its env vars set (process-wide: integration tests share one home).
    Its `instance` is in memory (`memory_instance`) unless `storage="sqlite"`: the home's own,
    which the CLI in another process also sees."""
    from orchestration.paths import home_env

    env = home_env(root)
    for key, value in env.items():
        if monkeypatch:
            monkeypatch.setenv(key, value)
        else:
            os.environ[key] = value
    from orchestration.instance import ensure_instance

    ensure_instance()
    return PipelineHome(
        home=root,
        landing=root / "landing",
        truth=root / "truth",
        warehouse=root / "warehouse.duckdb",
        outbox=root / "outbox",
        instance=(
            dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
            if storage == "sqlite"
            else memory_instance()
        ),
    )


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    """Generate CUSTOMERS persons, run the nightly job once; yield the home and the report."""
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path_factory.mktemp("c360_home"))
    generate(CUSTOMERS, SEED, AS_OF, home.landing, home.truth, progress=None)
    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    return home, report


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto) for the S3 landing and file-drop tests, emptied for
    each module: moto keeps its buckets per process, so one module's buckets would otherwise be
    seen by the next (a bucket one test creates is another's missing bucket)."""
    import urllib.request

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
    yield url
    server.stop()
