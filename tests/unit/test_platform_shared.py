"""What the campaign platforms share (http_platform, _platform_spec, _hashed_audience): each
platform's errors are the ones its spec declares, its config reads credentials and checks the
sync's fields the same way, and the hashed-audience plan/finish keeps the ledger in step with
what the platform holds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestration.activation.destinations import google_ads, klaviyo, mailman, meta, registry
from orchestration.activation.destinations._hashed_audience import HashedAudienceClient
from orchestration.activation.destinations._ledger import Ledger, member_key
from orchestration.activation.destinations.http_platform import ClientSettings, PlatformClient
from orchestration.activation.destinations.rows import Row

PLATFORMS = {
    "google_ads": (google_ads.GoogleAdsConfigError, google_ads.GoogleAdsAuthError),
    "meta": (meta.MetaConfigError, meta.MetaAuthError),
    "klaviyo": (klaviyo.KlaviyoConfigError, klaviyo.KlaviyoAuthError),
    "mailman": (mailman.MailmanConfigError, mailman.MailmanAuthError),
}


@pytest.mark.parametrize("kind", sorted(PLATFORMS))
def test_a_platforms_own_errors_are_caught_as_its_specs_errors(kind):
    spec = registry.get(kind)
    for error in PLATFORMS[kind]:
        assert issubclass(error, spec.errors), (kind, error)
    assert spec.deletes and spec.config.config_error is PLATFORMS[kind][0]


def test_a_credential_env_var_missing_raises_the_platforms_error_naming_it(monkeypatch):
    monkeypatch.delenv("C360_META_ACCESS_TOKEN", raising=False)
    config = meta.MetaConfig(audience_id="123")
    with pytest.raises(meta.MetaConfigError, match="C360_META_ACCESS_TOKEN is not set"):
        config.env("access_token_env", "Marketing API access token")
    monkeypatch.setenv("C360_META_ACCESS_TOKEN", "token-value")
    assert config.env("access_token_env", "token") == "token-value"


def test_client_settings_carry_the_configs_waits():
    config = google_ads.GoogleAdsConfig(customer_id="1234567890", user_list_id="5",
                                        max_attempts=3)  # fmt: skip
    settings = config.client_settings(500)
    assert (settings.batch_rows, settings.max_in_flight, settings.max_attempts) == (500, 1, 3)
    assert (settings.timeout_seconds, settings.backoff_seconds) == (60.0, 1.0)


@pytest.mark.parametrize(
    ("model", "values", "fields", "message"),
    [
        (klaviyo.KlaviyoConfig, {"list_id": "L1"}, ["fax"], "fax not a Klaviyo profile field"),
        (klaviyo.KlaviyoConfig, {"list_id": "L1"}, ["first_name"], "needs email or phone"),
        (meta.MetaConfig, {"audience_id": "1"}, ["first_name"], "needs email or phone"),
        (google_ads.GoogleAdsConfig, {"customer_id": "1234567890", "user_list_id": "5"},
         ["last_name"], "Customer Match needs email, phone"),
    ],
)  # fmt: skip
def test_the_sync_fields_rules(model, values, fields, message):
    with pytest.raises(ValidationError, match=message):
        model.model_validate(values, context={"fields": fields})
    model.model_validate(values, context={"fields": ["email"]})


class _Audience(HashedAudienceClient):
    """Hashes nothing: a person's member is their `id` field (None without one)."""

    def member(self, row: Row) -> dict | None:
        return {"id": row.fields["id"]} if row.fields.get("id") else None


def _audience(tmp_path) -> _Audience:
    return _Audience("s", "http://127.0.0.1:9", {}, ClientSettings(batch_rows=10),
                     ledger=Ledger("s", tmp_path))  # fmt: skip


def test_the_plan_removes_what_the_ledger_holds_and_intends_the_adds(tmp_path):
    client = _audience(tmp_path)
    client.ledger.settle("a", {member_key({"id": "old-a"}): None})
    client.ledger.settle("b", {member_key({"id": "b"}): None})
    plan = client.plan([
        Row("a", "upsert", {"id": "new-a"}, "ka"), Row("b", "delete", {}, "kb"),
        Row("c", "upsert", {}, "kc"),
    ])  # fmt: skip
    assert plan.removes == [("ka", {"id": "old-a"}), ("kb", {"id": "b"})]
    assert plan.adds == [("ka", {"id": "new-a"})]
    assert plan.intents == {"ka": ("a", member_key({"id": "new-a"}))}
    assert plan.outcomes["kc"].status == "rejected"
    # written before anything is sent: a crash after the add still knows how to remove it
    assert set(client.ledger.members("a")) == {member_key({"id": "old-a"}),
                                               member_key({"id": "new-a"})}  # fmt: skip
    client.close()


def test_finish_takes_each_rows_worst_outcome_and_settles_only_the_ok_rows(tmp_path):
    client = _audience(tmp_path)
    client.ledger.settle("a", {member_key({"id": "old-a"}): None})
    plan = client.plan([Row("a", "upsert", {"id": "new-a"}, "ka"),
                        Row("d", "upsert", {"id": "d"}, "kd")])  # fmt: skip
    out = client.finish(plan, {"ka": [("ok", ""), ("unknown", "timeout")],
                               "kd": [("ok", "")]})  # fmt: skip
    assert (out["ka"].status, out["ka"].reason, out["kd"].status) == ("unknown", "timeout", "ok")
    # a row not settled keeps both members: the next removal still sends the old one
    assert len(client.ledger.members("a")) == 2
    assert set(client.ledger.members("d")) == {member_key({"id": "d"})}
    client.close()


def test_a_job_is_polled_until_done_or_out_of_reads():
    """One polling rule for every platform job (Google Ads, Klaviyo): read until done, at most
    `polls` reads with a wait between two reads, never after the last; the last state read."""
    waits: list[float] = []
    client = PlatformClient("s", "http://127.0.0.1:9", {}, ClientSettings(10), sleep=waits.append)
    states = iter(["RUNNING", "RUNNING", "SUCCESS", "never read"])
    assert client.poll(lambda: next(states), lambda s: s != "RUNNING", 5, 2.0) == "SUCCESS"
    assert waits == [2.0, 2.0]

    waits.clear()
    reads = []
    still = client.poll(lambda: reads.append(1) or "RUNNING", lambda s: s != "RUNNING", 3, 0.5)
    assert (still, len(reads), waits) == ("RUNNING", 3, [0.5, 0.5])
    client.http.close()
