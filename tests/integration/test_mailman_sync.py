"""A mailing-list sync against a real GNU Mailman 3 core (from PyPI, in its own venv: `make
mailman`), started by the test with its REST API on a loopback port: the first run subscribes
exactly the consented audience; after a person withdraws consent the next run unsubscribes
them — both read from Mailman's own roster."""

import duckdb
import pytest

from orchestration.activation.destinations import registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from tests.integration.conftest import AS_OF
from tests.integration.platform_sync_helpers import expected_audience, warehouse_copy
from tests.servers import mailman

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group(name="pipeline"),
    pytest.mark.skipif(not mailman.available(), reason="no Mailman venv: run `make mailman`"),
]

SYNC = """name: mailman__lapsed_high_value
description: Lapsed high-value customers as a Mailman list (test).
segment: lapsed_high_value
destination: mailman
channel: email
purpose: marketing
mode: mirror
identifier: email
batch_rows: 1000
config:
  endpoint: {url}
  list_id: {list_id}
  user_env: TEST_MAILMAN_USER
  password_env: TEST_MAILMAN_PASSWORD
fields:
  email: email
  first_name: first_name
  last_name: last_name
"""


def test_mailman_list_follows_the_consented_audience(pipeline, tmp_path, monkeypatch):
    home, _ = pipeline
    monkeypatch.setenv("TEST_MAILMAN_USER", mailman.USER)
    monkeypatch.setenv("TEST_MAILMAN_PASSWORD", mailman.PASSWORD)
    warehouse = warehouse_copy(home.warehouse, tmp_path)
    with mailman.MailmanCore(tmp_path / "mailman") as core:
        list_id = core.create_list("lapsed")
        path = tmp_path / "mailman__lapsed_high_value.yml"
        path.write_text(SYNC.format(url=core.url, list_id=list_id))
        sync = load_sync(path)
        with duckdb.connect(str(warehouse)) as con:
            expected = {f["email"].lower() for f in expected_audience(con).values()}
            assert len(expected) > 20
            client = registry.build(sync)
            first = run_diff_sync(con, sync, AS_OF, "run-1", client)
            after_first = core.roster(list_id)
            leaver = sorted(expected)[0]
            con.execute(
                "update marts.consent_state set consent_status = 'revoked', is_consented = false "
                "where channel = 'email' and purpose = 'marketing' and lower(contact_point) = ?",
                [leaver],
            )
            still = {f["email"].lower() for f in expected_audience(con).values()}
            second = run_diff_sync(con, sync, AS_OF, "run-2", client)
            after_second = core.roster(list_id)
            assert client.roster() == after_second, "the client reads the roster Mailman holds"
            client.close()
    assert {e.lower() for e in after_first} == expected, "exactly the consented audience"
    assert leaver not in still
    assert {e.lower() for e in after_second} == still, "a withdrawn person is unsubscribed"
    assert first.ok == len(expected) and second.ok == 1
