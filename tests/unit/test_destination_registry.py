"""A destination is one module + a sync YAML: a module declaring DESTINATION, registered from its
file alone (C360_DESTINATION_MODULES), is validated by the sync loader (errors naming the file and
the field, env var names only), shown by `c360 sync --dry-run`, built and run by the diff runner."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.activation import syncs as syncs_module
from orchestration.activation.destinations import registry
from orchestration.activation.sync_definition import SyncDefinitionError
from orchestration.activation.syncs import load_sync

BENCH = Path(__file__).resolve().parents[2] / "bench" / "activation_sync.py"

MODULE = '''
"""acme_crm: a made-up platform, declared in one file."""
from pydantic import field_validator

from orchestration.activation.destinations.registry import DestinationSpec, Limits, env_value
from orchestration.activation.sync_definition import DestinationConfig, EnvName
from orchestration.activation.destinations.rows import Outcome

BUILT = []


class AcmeConfigError(ValueError):
    pass


class AcmeConfig(DestinationConfig):
    endpoint: str
    api_key_env: EnvName

    @field_validator("endpoint")
    @classmethod
    def _https(cls, value):
        if not value.startswith("https://"):
            raise ValueError("must start with https://")
        return value


class AcmeClient:
    def __init__(self, sync, key):
        self.sync, self.key, self.sent = sync, key, []

    def send(self, rows):
        rows = list(rows)
        self.sent.extend(rows)
        return {r.idempotency_key: Outcome("ok", "", 1) for r in rows}

    def delete(self, identifiers):
        return {i: Outcome("ok", "", 1) for i in identifiers}


def build(sync, log):
    client = AcmeClient(sync, env_value(sync.config.api_key_env, AcmeConfigError))
    BUILT.append(client)
    return client


DESTINATION = DestinationSpec(
    kind="acme_crm",
    description="test platform",
    config=AcmeConfig,
    limits=Limits(batch_rows=50, max_in_flight=1),
    build=build,
    errors=(AcmeConfigError,),
    modes=("upsert", "mirror"),
    deletes=True,
)
'''

SYNC = """name: acme__audience
segment: {segment}
destination: acme_crm
channel: email
mode: mirror
fields: {{email: email, first_name: first_name}}
config:
  endpoint: https://api.acme.example
  api_key_env: C360_ACME_KEY
"""


@pytest.fixture
def acme(tmp_path, monkeypatch):
    """The acme_crm module written to a folder on sys.path and named in C360_DESTINATION_MODULES."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "acme_crm_destination.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(registry.EXTRA_MODULES_ENV, "acme_crm_destination")
    registry.reset()
    yield importlib.import_module("acme_crm_destination")
    sys.modules.pop("acme_crm_destination", None)
    monkeypatch.delenv(registry.EXTRA_MODULES_ENV)
    registry.reset()


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "acme__audience.yml"
    path.write_text(body)
    return path


def test_the_builtin_destinations_are_registered():
    assert set(registry.kinds()) >= {"file_drop", "webhook", "postgres_table"}
    assert registry.kinds("file") == ("file_drop",)
    assert "webhook" in registry.kinds("diff") and "file_drop" not in registry.kinds("diff")


def test_a_module_registered_from_one_file_is_validated_by_the_sync_loader(acme, tmp_path):
    assert "acme_crm" in registry.kinds("diff")
    sync = load_sync(_write(tmp_path, SYNC.format(segment="vip")))
    assert (sync.destination, sync.mode, sync.batch_rows) == ("acme_crm", "mirror", 50)
    assert (sync.config.endpoint, sync.config.api_key_env) == (
        "https://api.acme.example",
        "C360_ACME_KEY",
    )
    assert registry.get("acme_crm").deletes
    base = SYNC.format(segment="vip")
    for body, message in [
        (base.replace("C360_ACME_KEY", "sk_live_9f8e7d"), "config.api_key_env: String should"),
        (base.replace("https://api", "http://api"), "config.endpoint: must start with https://"),
        (base.replace("  endpoint: https://api.acme.example\n", ""), "config.endpoint: required"),
        (base + "  region: eu\n", "config.region: unknown field"),
        (base + "batch_rows: 51\n", "batch_rows: an integer from 1 to 50"),
        (base.replace("mode: mirror", "mode: create_only"), "mode: a acme crm only supports"),
        (base + "uri: s3://drops\n", "uri: only a file_drop sync has a uri"),
        (base + "format: csv\n", "format: only a file_drop sync has a format"),
    ]:
        with pytest.raises(SyncDefinitionError) as err:
            load_sync(_write(tmp_path, body))
        assert str(err.value).startswith(f"{tmp_path / 'acme__audience.yml'}: "), err.value
        assert message in str(err.value)
        assert "sk_live_9f8e7d" not in str(err.value), "a pasted credential is never echoed"


def test_without_the_module_the_kind_is_unknown(tmp_path):
    with pytest.raises(SyncDefinitionError, match="destination: 'acme_crm' not one of"):
        load_sync(_write(tmp_path, SYNC.format(segment="vip")))


def _bench():
    spec = importlib.util.spec_from_file_location("activation_sync_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_and_the_diff_runner_use_the_registered_module(acme, tmp_path, monkeypatch, capsys):
    from orchestration.activation.diff_runner import run_diff_sync
    from orchestration.cli import main
    from orchestration.paths import home_env

    bench = _bench()
    for key, value in home_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    (tmp_path / "home").mkdir()
    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb")) as con:
        bench.synthesise(con, 200)
        expected = bench.expected_audience(con)
    folder = tmp_path / "syncs"
    folder.mkdir()
    _write(folder, SYNC.format(segment=bench.SEGMENT))
    monkeypatch.setenv("C360_SYNCS_DIR", str(folder))
    monkeypatch.setattr(syncs_module, "defined_segments", lambda: frozenset({bench.SEGMENT}))

    assert main(["sync", "--dry-run", "--as-of", bench.AS_OF.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "acme__audience → acme_crm, mode mirror" in out
    create = next(line for line in out.splitlines() if line.strip().startswith("create"))
    assert expected > 0 and int(create.split()[-1].replace(",", "")) == expected
    assert acme.BUILT == [], "a dry run builds no client and sends nothing"

    sync = syncs_module.load_all_syncs()[0]
    with pytest.raises(acme.AcmeConfigError, match="C360_ACME_KEY is not set"):
        registry.build(sync)
    monkeypatch.setenv("C360_ACME_KEY", "not-a-real-key")
    client = registry.build(sync)
    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb")) as con:
        out = run_diff_sync(con, sync, bench.AS_OF, "run-1", client)
        destinations = con.execute(
            "select distinct destination from activation.sync_runs"
        ).fetchall()
    assert out.status == "success" and out.ok == len(client.sent) == expected
    assert destinations == [("acme_crm",)]


def test_a_webhook_sync_carries_its_own_endpoint_secret_and_limits(tmp_path, monkeypatch):
    body = (
        "name: webhook__own\nsegment: vip\ndestination: webhook\nchannel: email\n"
        "fields: {email: email}\nbatch_rows: 40\nmax_in_flight: 1\nrate_per_second: 5\n"
        "config: {url_env: C360_PARTNER_URL, secret_env: C360_PARTNER_SECRET}\n"
    )
    path = tmp_path / "webhook__own.yml"
    path.write_text(body)
    sync = load_sync(path)
    monkeypatch.delenv("C360_PARTNER_URL", raising=False)
    from orchestration.activation.destinations.webhook import WebhookConfigError

    with pytest.raises(WebhookConfigError, match="C360_PARTNER_URL is not set"):
        registry.build(sync)
    monkeypatch.setenv("C360_PARTNER_URL", "http://127.0.0.1:9/hooks")
    monkeypatch.setenv("C360_PARTNER_SECRET", "partner-secret-not-real")
    client = registry.build(sync)
    config = client.config
    assert (config.url, config.secret) == ("http://127.0.0.1:9/hooks", "partner-secret-not-real")
    assert (config.max_rows, config.max_in_flight, config.rate_per_second) == (40, 1, 5.0)
    client.http.close()


def test_the_rate_limiter_spaces_request_starts():
    slept: list[float] = []
    limiter = registry.RateLimiter(4.0, sleep=slept.append)
    for _ in range(5):
        limiter.wait()
    # 5 starts at 4 per second (no time passing but the waits): each waits for its slot, the
    # last one a second after the first
    assert [round(s, 2) for s in slept] == [0.25, 0.5, 0.75, 1.0]
