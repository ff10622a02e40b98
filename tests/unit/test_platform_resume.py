"""Resuming a killed run's plan sends nothing twice: Klaviyo reads the list back before it
imports (send_resumed), Google Ads waits for the job the killed run left RUNNING before it
decides what to resend — against the local servers (real HTTP). The killed run is played by a
first client that stops before it sees its job end; the resume is a fresh client."""

from collections import Counter

from orchestration.activation.destinations import google_ads, klaviyo
from orchestration.activation.destinations._ledger import Ledger
from orchestration.activation.destinations.rows import make_row
from tests.servers.google_ads import GoogleAdsServer
from tests.servers.klaviyo import KlaviyoServer

PEOPLE = {
    "c1": {"email": "ann@example.org", "first_name": "Ann"},
    "c2": {"email": "bob@example.org", "first_name": "Bob"},
    "c3": {"email": "cy@example.org", "first_name": "Cy"},
}


def _rows(sync: str) -> list:
    return [make_row(sync, i, "upsert", f) for i, f in PEOPLE.items()]


def _klaviyo(server: KlaviyoServer) -> klaviyo.KlaviyoClient:
    config = klaviyo.KlaviyoConfig(list_id="Y6nRLr", endpoint=server.url, backoff_seconds=0,
                                   poll_seconds=0)  # fmt: skip
    return klaviyo.KlaviyoClient(config, "s", "pk_test")


def test_klaviyo_resume_does_not_import_the_killed_runs_applied_profiles_again():
    rows = _rows("s")
    with KlaviyoServer() as server:
        killed = _klaviyo(server)
        # the killed run's import job for c1 and c2 was submitted (applied); it never polled it
        body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
            {"type": "profile", "attributes": klaviyo.profile_attributes(r.identifier, r.fields)}
            for r in rows[:2]]}}, "relationships": {"lists": {"data": [
            {"type": "list", "id": "Y6nRLr"}]}}}}  # fmt: skip
        assert killed.request("POST", "/profile-bulk-import-jobs", json=body).ok(202)
        killed.close()
        resumed = _klaviyo(server)
        out = resumed.send_resumed(rows)
        resumed.close()
    assert {o.status for o in out.values()} == {"ok"}
    assert server.duplicate_imports == 0
    assert Counter(server.applied) == {("import", "c1"): 1, ("import", "c2"): 1,
                                       ("import", "c3"): 1}  # fmt: skip
    assert set(server.member_attributes()) == {"c1", "c2", "c3"}


def _google(server: GoogleAdsServer, tmp_path, max_polls: int = 60) -> google_ads.GoogleAdsClient:
    config = google_ads.GoogleAdsConfig(
        customer_id="1234567890", user_list_id="555", endpoint=server.url,
        backoff_seconds=0, poll_seconds=0, max_polls=max_polls,
    )  # fmt: skip
    return google_ads.GoogleAdsClient(
        config, "s", "dev-token", "access-token", ledger=Ledger("s", tmp_path)
    )


def _killed_google_run(server: GoogleAdsServer, tmp_path, rows: list) -> None:
    """A run whose job was created, filled and run, killed before it read the job's status:
    the job stays RUNNING at Google, the ledger names it."""
    killed = _google(server, tmp_path, max_polls=1)
    killed.job_status = lambda job: "RUNNING"  # type: ignore[method-assign]
    out = killed.send(rows)
    killed.close()
    assert {o.status for o in out.values()} == {"unknown"}
    assert {job.status for job in server.jobs.values()} == {"RUNNING"}


def test_google_resume_waits_for_the_killed_runs_running_job(tmp_path):
    rows = _rows("s")
    with GoogleAdsServer() as server:
        _killed_google_run(server, tmp_path, rows)
        resumed = _google(server, tmp_path)
        out = resumed.send(rows)
        resumed.close()
    assert {o.status for o in out.values()} == {"ok"}
    assert server.duplicate_creates == 0
    assert len(server.jobs) == 1, "nothing was sent again"
    assert Counter(kind for kind, _ in server.applied) == {"create": 3}


def test_google_resume_leaves_a_job_still_running_unknown_and_unsent(tmp_path):
    rows = _rows("s")
    with GoogleAdsServer() as server:
        _killed_google_run(server, tmp_path, rows)
        resumed = _google(server, tmp_path, max_polls=3)
        reads: list[str] = []

        def still_running(job: str) -> str:
            reads.append(job)
            return "RUNNING"

        resumed.job_status = still_running  # type: ignore[method-assign]
        out = resumed.send(rows)
        resumed.close()
    assert {o.status for o in out.values()} == {"unknown"}
    assert all("still running" in o.reason for o in out.values())
    assert len(reads) == 3, "the rows' one job read max_polls times, once per send"
    assert len(server.jobs) == 1 and server.duplicate_creates == 0
