"""Every campaign-platform destination (Braze, Mailchimp, Google Ads, Meta, Klaviyo, Mailman)
end to end on a pipeline's warehouse, against its local server (tests/servers/; Mailman: a real
core behind a fault proxy) under ≥ 20 % injected faults — 429 + Retry-After, 5xx, applied then
answered too late (a client timeout) — and partial success in the platform's own shape: after
two runs the platform holds exactly the consented audience (less the people it refuses, each
recorded with the platform's reason), no add was applied twice, and nobody unconsented or held
out was ever applied; a third run after a withdrawal takes that person out. Checked on the server's own state, the audience read from the marts."""

from __future__ import annotations

import duckdb
import pytest

from orchestration.activation.destinations import hashing, registry
from orchestration.activation.diff_runner import run_diff_sync
from orchestration.activation.syncs import load_sync
from tests.integration.conftest import AS_OF
from tests.integration.platform_sync_helpers import (
    CREDENTIALS,
    PLATFORMS,
    expected_audience,
    not_consented,
    platform_server,
    sync_yaml,
    warehouse_copy,
)
from tests.servers import mailman
from tests.servers.common import Faults

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

# 3 faults in 10 write requests, one of each kind within the first five, whatever the number of
# requests a run makes
FAULTS = Faults(
    cycle=("rate_limit", None, "server_error", None, "timeout", None, None, None, None, None),
    retry_after_seconds=1,
    slow_seconds=1.0,
)
NOT_HASHED = "not-a-sha256"


def _refused_by_hash(monkeypatch: pytest.MonkeyPatch, emails: set[str]) -> None:
    """Google Ads and Meta refuse a value that is not a SHA-256 hash (partial failure by
    operation index, invalid_entry_samples): the refused people are sent with one."""
    google, meta = hashing.google_user_identifiers, hashing.meta_user_row

    def google_ids(fields, region="US"):
        if (fields.get("email") or "").lower() in emails:
            return [{"hashedEmail": NOT_HASHED}]
        return google(fields, region)

    def meta_row(fields, region="US"):
        row = meta(fields, region)
        return [NOT_HASHED, *row[1:]] if (fields.get("email") or "").lower() in emails else row

    monkeypatch.setattr(hashing, "google_user_identifiers", google_ids)
    monkeypatch.setattr(hashing, "meta_user_row", meta_row)


@pytest.mark.parametrize(
    "platform",
    [
        pytest.param(p, marks=pytest.mark.skipif(
            p == "mailman" and not mailman.available(), reason="no Mailman venv: `make mailman`"))
        for p in PLATFORMS
    ],
)  # fmt: skip
def test_platform_sync_converges_to_the_consented_audience_under_faults(
    platform, pipeline, tmp_path, monkeypatch
):
    home, _ = pipeline
    monkeypatch.setenv("C360_LEDGER_DIR", str(tmp_path / "ledgers"))
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    assert FAULTS.share >= 0.2
    warehouse = warehouse_copy(home.warehouse, tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        expected, forbidden = expected_audience(con), not_consented(con)
    assert len(expected) > 20 and forbidden
    invalid = {cid: expected[cid] for cid in sorted(expected)[:2]}
    _refused_by_hash(monkeypatch, {f["email"].lower() for f in invalid.values()})
    core = mailman.MailmanCore(tmp_path / "mailman") if platform == "mailman" else None
    with core or _nothing(), platform_server(platform, FAULTS, invalid, core) as server:
        path = tmp_path / f"{platform}__lapsed_high_value.yml"
        path.write_text(sync_yaml(platform, server.url, server.list_id))
        sync = load_sync(path)
        client = registry.build(sync)
        with duckdb.connect(str(warehouse)) as con:
            first = run_diff_sync(con, sync, AS_OF, "run-1", client)
            second = run_diff_sync(con, sync, AS_OF, "run-2", client)
            held = server.held()
            # a person withdraws consent: the next run takes them out of the audience
            leaver = sorted(set(expected) - set(invalid))[0]
            con.execute(
                "update marts.consent_state set consent_status = 'revoked', is_consented = false "
                "where channel = 'email' and purpose = 'marketing' and contact_point = ?",
                [expected[leaver]["email"]],
            )
            third = run_diff_sync(con, sync, AS_OF, "run-3", client)
            rejected = dict(
                con.execute(
                    "select customer_id, any_value(error_message) from activation.contact_history "
                    "where sync_id = ? and outcome = 'rejected' group by 1",
                    [sync.name],
                ).fetchall()
            )
        after_withdrawal, applied = server.held(), server.applied()
        roster = client.roster() if hasattr(client, "roster") else None  # Mailman reads it back
        if hasattr(client, "close"):
            client.close()
        injected, writes = server.server.faults_injected, server.server.write_requests
        duplicates = server.duplicates()
    assert sum(injected.values()) >= 0.2 * writes and all(injected.values()), injected
    want = {server.key(cid, f) for cid, f in expected.items() if cid not in invalid}
    assert held == want, "exactly the consented audience after two runs"
    assert len(applied) == len(set(applied)) and duplicates == 0, "no row applied twice"
    banned = {server.key(cid, f) for cid, f in forbidden.items()} - want
    assert not banned & set(applied), "nobody unconsented or held out was ever applied"
    assert set(rejected) == set(invalid), "the refused people, recorded as rejected"
    assert all(reason for reason in rejected.values()), "with the platform's reason"
    assert first.held_out > 0 and first.filtered > 0
    assert first.ok + second.ok == len(expected) - len(invalid)
    assert third.ok >= 1 and after_withdrawal == want - {server.key(leaver, expected[leaver])}
    assert roster is None or {e.lower() for e in roster} == after_withdrawal


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
