"""The Braze and Mailchimp clients against local servers written from each platform's published
API (tests/servers/): every row settles under injected faults (429 + Retry-After, 5xx, applied
then answered too late), partial success in the platform's own shape rejects exactly the rows it
names, nothing is applied twice, removals, erasure and platform-side unsubscribes work."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from pathlib import Path

import pytest

from orchestration.activation.destinations.braze import BrazeClient, BrazeConfig
from orchestration.activation.destinations.http_platform import (
    ClientSettings,
    PlatformAuthError,
)
from orchestration.activation.destinations.mailchimp import (
    MailchimpClient,
    MailchimpConfig,
    subscriber_hash,
)
from orchestration.activation.destinations.rows import make_row
from orchestration.activation.sync_definition import SyncDefinitionError
from orchestration.activation.syncs import load_sync
from tests.servers.braze import BrazeServer
from tests.servers.common import Faults
from tests.servers.mailchimp import MailchimpServer

KEY = "local-test-key-not-real"
GROUP = "sg-marketing"
FAULTS = Faults(rate_limit_rate=0.09, server_error_rate=0.09, timeout_rate=0.09,
                retry_after_seconds=0, slow_seconds=0.5, seed=3)  # fmt: skip
FAST = ClientSettings(batch_rows=500, max_in_flight=3, timeout_seconds=0.25, max_attempts=8,
                      backoff_seconds=0.01)  # fmt: skip


def _rows(sync: str, n: int, op: str = "upsert", email=lambda i: f"p{i}@example.org"):
    return [
        make_row(
            sync, f"c{i}", op, {"email": email(i), "first_name": f"N{i}"} if op == "upsert" else {}
        )
        for i in range(n)
    ]


def _braze(server: BrazeServer, settings: ClientSettings = FAST) -> BrazeClient:
    config = BrazeConfig(endpoint=server.url, subscription_group_id=GROUP)
    return BrazeClient("braze__t", config, KEY, settings, sleep=lambda s: None)


def test_braze_settles_every_row_under_faults_and_applies_none_twice():
    with BrazeServer(KEY, FAULTS, invalid_ids={"c7", "c99"}) as server:
        client = _braze(server, ClientSettings(batch_rows=8, max_in_flight=3, timeout_seconds=0.25,
                                               max_attempts=8, backoff_seconds=0.01))  # fmt: skip
        rows = _rows("braze__t", 240)
        outcomes = client.send(rows)
        assert server.faults_injected["timeout"] > 0 and server.faults_injected["rate_limit"] > 0
        share = sum(server.faults_injected.values()) / server.write_requests
        assert share >= 0.2, share
        by_id = {r.identifier: outcomes[r.idempotency_key] for r in rows}
        rejected = {i for i, o in by_id.items() if o.status == "rejected"}
        assert rejected == {"c7", "c99"}, "exactly the rows Braze's errors[] named, by index"
        assert "Invalid 'email'" in by_id["c7"].reason
        assert all(o.status == "ok" for i, o in by_id.items() if i not in rejected)
        assert server.subscribed(GROUP) == {f"c{i}" for i in range(240)} - rejected
        assert max(server.applied.values()) == 1, "a timed-out row read back, not resent"
        # removal: unsubscribed from the group, the profile kept
        removed = client.send(_rows("braze__t", 60, op="delete"))
        assert all(o.status == "ok" for o in removed.values())
        assert server.subscribed(GROUP) == {f"c{i}" for i in range(60, 240)} - rejected
        assert "c0" in server.users
        # erasure deletes the user
        erased = client.delete(["c1", "c2"])
        assert all(o.status == "ok" for o in erased.values())
        assert "c1" not in server.users and "c2" not in server.users


def test_braze_requests_hold_at_most_75_attribute_objects():
    seen: list[int] = []
    with BrazeServer(KEY) as server:
        original = server._track

        def track(body):
            seen.append(len(body["attributes"]))
            return original(body)

        server._track = track  # type: ignore[method-assign]
        _braze(server).send(_rows("braze__t", 160))
    assert sorted(seen) == [10, 75, 75]


def test_braze_refused_key_stops_the_sync():
    with BrazeServer("another-key") as server, pytest.raises(PlatformAuthError, match="401"):
        _braze(server).send(_rows("braze__t", 3))


def test_mailchimp_subscriber_hash_is_md5_of_the_lower_cased_email():
    email = "Urist.McVankab@FreddiesJokes.com"
    assert subscriber_hash(email) == hashlib.md5(b"urist.mcvankab@freddiesjokes.com").hexdigest()
    assert subscriber_hash(email) == subscriber_hash(email.lower()) == subscriber_hash(
        email.upper())  # fmt: skip


def _mailchimp(server: MailchimpServer, auth: str = "basic", removal: str = "unsubscribed"):
    config = MailchimpConfig(endpoint=server.url + "/3.0", list_id="a1b2c3", auth=auth,
                             removal=removal)  # fmt: skip
    return MailchimpClient("mc__t", config, KEY, FAST, sleep=lambda s: None)


def _mc_rows(n: int, op: str = "upsert"):
    return [
        make_row(
            "mc__t",
            f"P{i}@Example.org",
            op,
            {"email": f"P{i}@Example.org", "FNAME": f"N{i}"} if op == "upsert" else {},
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_mailchimp_settles_every_row_under_faults_and_applies_none_twice(auth):
    bad = "P5@Example.org"
    with MailchimpServer(KEY, "a1b2c3", FAULTS, invalid_emails={bad}) as server:
        client = _mailchimp(server, auth)
        assert client.http.headers["Authorization"] == (
            "Basic " + base64.b64encode(f"c360:{KEY}".encode()).decode()
            if auth == "basic" else f"Bearer {KEY}"
        )  # fmt: skip
        rows = _mc_rows(1100)
        outcomes = client.send(rows)
        share = sum(server.faults_injected.values()) / server.write_requests
        assert share >= 0.2 and server.faults_injected["timeout"] > 0, server.faults_injected
        by_email = {r.identifier: outcomes[r.idempotency_key] for r in rows}
        assert (
            by_email[bad].status == "rejected" and "looks fake or invalid" in by_email[bad].reason
        )
        assert all(o.status == "ok" for e, o in by_email.items() if e != bad)
        assert server.with_status("subscribed") == {r.identifier.lower() for r in rows} - {
            bad.lower()}  # fmt: skip
        assert max(server.applied.values()) == 1, "a timed-out batch read back, not resent"
        member = server.members[subscriber_hash("p3@example.org")]
        assert member["merge_fields"] == {"FNAME": "N3"}, "email is the key, not a merge field"
        # removal = unsubscribed status
        removed = client.send([r for r in _mc_rows(10, op="delete") if r.identifier != bad])
        assert all(o.status == "ok" for o in removed.values())
        assert server.with_status("unsubscribed") == {f"p{i}@example.org" for i in range(10)
                                                      if i != 5}  # fmt: skip


class _SlowFirstRead(MailchimpServer):
    """Answers each member's first read after the client's timeout (a loaded machine)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slow_reads: set[str] = set()

    def _get(self, key: str):
        if key not in self.slow_reads:
            self.slow_reads.add(key)
            time.sleep(FAST.timeout_seconds * 2)
        return super()._get(key)


def test_a_timed_out_read_back_is_read_again_not_turned_into_a_resend():
    # the write is applied and answered late; the read-back's first GET times out too
    with _SlowFirstRead(KEY, "a1b2c3", Faults(cycle=("timeout",) + (None,) * 9)) as server:
        rows = _mc_rows(3)
        outcomes = _mailchimp(server).send(rows)
        assert server.faults_injected["timeout"] == 1
        assert [outcomes[r.idempotency_key].reason for r in rows] == ["reconciled by read-back"] * 3
        assert server.write_requests == 1 and max(server.applied.values()) == 1
        assert len(server.slow_reads) == 3


class _LateFirstWrite(MailchimpServer):
    """Takes the first batch in, and applies and answers it only after the client's timeout
    (a request queued at the platform)."""

    def __init__(self, *args, delay: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delay, self.batches = delay, 0

    def _batch(self, body):
        self.batches += 1
        if self.batches == 1:
            time.sleep(self.delay)
        return super()._batch(body)


def test_a_write_that_lands_after_its_timeout_is_found_by_the_read_back_not_resent():
    settings = ClientSettings(batch_rows=500, max_in_flight=1, timeout_seconds=0.5,
                              max_attempts=3, backoff_seconds=0.01)  # fmt: skip
    with _LateFirstWrite(KEY, "a1b2c3", delay=0.8) as server:
        config = MailchimpConfig(endpoint=server.url + "/3.0", list_id="a1b2c3")
        client = MailchimpClient("mc__t", config, KEY, settings)
        rows = _mc_rows(3)
        outcomes = client.send(rows)
        assert [outcomes[r.idempotency_key].reason for r in rows] == ["reconciled by read-back"] * 3
        assert server.batches == 1 and max(server.applied.values()) == 1


def test_a_resume_reads_back_a_timeout_after_the_interrupted_runs_last_request():
    waits: list[float] = []
    with MailchimpServer(KEY, "a1b2c3") as server:
        config = MailchimpConfig(endpoint=server.url + "/3.0", list_id="a1b2c3")
        client = MailchimpClient("mc__t", config, KEY, FAST, sleep=waits.append)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        client.send_resumed(_mc_rows(2), last_sent=now - dt.timedelta(seconds=0.1))
        assert len(waits) == 1 and 0 < waits[0] <= FAST.timeout_seconds - 0.1
        waits.clear()
        client.send_resumed(_mc_rows(2), last_sent=now - dt.timedelta(hours=8))
        client.send_resumed(_mc_rows(2))
        assert waits == [], "a run interrupted long ago, or no chunk sent: nothing to wait for"


def test_mailchimp_archive_removal_erasure_and_platform_unsubscribes():
    with MailchimpServer(KEY, "a1b2c3") as server:
        client = _mailchimp(server, removal="archived")
        client.send(_mc_rows(20))
        client.send(_mc_rows(3, op="delete"))
        assert server.with_status("archived") == {"p0@example.org", "p1@example.org",
                                                  "p2@example.org"}  # fmt: skip
        server.unsubscribe("p9@example.org")
        unsubscribed = list(client.unsubscribes())
        assert [(u.identifier, u.channel) for u in unsubscribed] == [("P9@Example.org", "email")]
        erased = client.delete(["P4@Example.org", "nobody@example.org"])
        assert (
            erased["P4@Example.org"].status == "ok" and erased["nobody@example.org"].status == "ok"
        )
        assert subscriber_hash("p4@example.org") not in server.members


MC_SYNC = """name: mailchimp__s
segment: vip
destination: mailchimp
channel: email
identifier: email
fields: {email: email, FNAME: first_name}
config:
  endpoint: https://us6.api.mailchimp.com/3.0
  list_id: a1b2c3
  api_key_env: C360_MAILCHIMP_API_KEY
"""
BRAZE_SYNC = """name: braze__s
segment: vip
destination: braze
channel: email
fields: {email: email, first_name: first_name}
config:
  endpoint: https://rest.fra-01.braze.eu
  api_key_env: C360_BRAZE_API_KEY
  subscription_group_id: sg-1
"""


def test_platform_sync_yaml_is_validated_naming_file_and_field(tmp_path):
    for name, body, bad, message in [
        ("mailchimp__s", MC_SYNC, MC_SYNC.replace("identifier: email\n", ""),
         "identifier: a mailchimp sync is keyed by email"),
        ("mailchimp__s", MC_SYNC, MC_SYNC + "batch_rows: 501\n", "batch_rows: an integer from 1 to 500"),
        ("mailchimp__s", MC_SYNC, MC_SYNC.replace("https://us6", "ftp://us6"),
         "config.endpoint: must be an https:// URL"),
        ("braze__s", BRAZE_SYNC, BRAZE_SYNC + "batch_rows: 76\n", "batch_rows: an integer from 1 to 75"),
        ("braze__s", BRAZE_SYNC, BRAZE_SYNC.replace("  subscription_group_id: sg-1\n", ""),
         "config.subscription_group_id: required"),
        ("braze__s", BRAZE_SYNC, BRAZE_SYNC.replace("sg-1", '" "'),
         "config.subscription_group_id: String should have at least 1 character"),
        ("mailchimp__s", MC_SYNC, MC_SYNC.replace("a1b2c3", "a1/b2"),
         "config.list_id: must be the list's id (letters and digits)"),
        ("braze__s", BRAZE_SYNC, BRAZE_SYNC.replace("C360_BRAZE_API_KEY", "abc-123-secret"),
         "config.api_key_env: String should match pattern"),
    ]:  # fmt: skip
        path = Path(tmp_path) / f"{name}.yml"
        path.write_text(body)
        assert load_sync(path).destination == name.split("__")[0]
        path.write_text(bad)
        with pytest.raises(SyncDefinitionError) as err:
            load_sync(path)
        assert str(err.value).startswith(f"{path}: ") and message in str(err.value), err.value
        assert "abc-123-secret" not in str(err.value)
