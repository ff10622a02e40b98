"""A member who unsubscribes at Mailchimp is not in the next sync of that channel (issue 16,
core 4): on a copy of a real pipeline's warehouse, a Mailchimp sync runs against the local server
(tests/servers/mailchimp.py), a member unsubscribes at the platform, the platform-unsubscribes
step lands it in raw consent (landing file + the consent contract's publish path), dbt rebuilds
consent_state, and the next run of the sync removes that member instead of keeping them."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from orchestration import dbt_warm
from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from orchestration.contracts.model import all_source_contracts
from orchestration.ingest.wap import publish_batch, stage_batch
from orchestration.paths import dbt_project_dir
from orchestration.privacy.platform_unsubscribes import collect
from tests.integration.conftest import AS_OF
from tests.integration.platform_sync_helpers import MAILCHIMP_KEY as KEY
from tests.integration.platform_sync_helpers import MAILCHIMP_LIST as LIST
from tests.integration.platform_sync_helpers import sync_yaml
from tests.servers.mailchimp import MailchimpServer

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]


def _rebuild_consent(warehouse: Path, tmp_path: Path) -> None:
    dbt = Path(dbt_warm.executable())
    env = {**os.environ, "C360_WAREHOUSE": str(warehouse)}
    done = subprocess.run(
        [str(dbt), "run", "--profiles-dir", ".", "--select", "stg_consent__events",
         "consent_state", "--vars", json.dumps({"as_of": AS_OF.isoformat(), "run_id": "t-unsub"}),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        cwd=dbt_project_dir(), env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]


def test_a_member_unsubscribed_at_mailchimp_leaves_the_next_sync(pipeline, tmp_path, monkeypatch):
    home, _ = pipeline
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(home.warehouse, warehouse)
    monkeypatch.setenv("TEST_MAILCHIMP_KEY", KEY)
    contract = next(c for c in all_source_contracts() if c.id == "consent__events")
    landing = tmp_path / "landing"
    with MailchimpServer(KEY, LIST) as server:
        path = tmp_path / "mailchimp__lapsed_high_value.yml"
        path.write_text(sync_yaml("mailchimp", server.url))
        sync = load_sync(path)
        with duckdb.connect(str(warehouse)) as con:
            run_diff_sync(con, sync, AS_OF, "run-1", registry.build(sync))
            subscribed = sorted(server.with_status("subscribed"))
            quitter = subscribed[0]
            # the opt-out happened during the night's as_of (the pipeline's as_of is fixed)
            server.unsubscribe(quitter, at=dt.datetime.combine(AS_OF, dt.time(12), tzinfo=dt.UTC))
            got = collect(con, [sync], landing, AS_OF, "run-unsub")
            batch = stage_batch(con, contract, landing, AS_OF, "run-unsub")
            published = publish_batch(con, contract, batch, "run-unsub", landing)
        _rebuild_consent(warehouse, tmp_path)
        with duckdb.connect(str(warehouse)) as con:
            consent = con.execute(
                "select consent_status, is_consented from marts.consent_state where channel = "
                "'email' and purpose = 'marketing' and lower(contact_point) = ?",
                [quitter],
            ).fetchall()
            second = run_diff_sync(con, sync, AS_OF, "run-2", registry.build(sync))
            state = con.execute(
                "select status from activation.sync_state where sync_id = ? "
                "and lower(identifier) = ?",
                [sync.name, quitter],
            ).fetchall()
        after = server.with_status("subscribed")
    assert len(subscribed) > 5 and got.events == {sync.name: 1} and published
    assert (batch.loaded, batch.quarantined) == (1, 0)
    assert consent == [("revoked", False)]
    assert quitter not in after, "not subscribed again by the next sync"
    assert after == set(subscribed) - {quitter}, "everyone else stays"
    assert state == [("removed",)] and second.sent >= 1
