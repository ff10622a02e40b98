"""Credentials in URLs are redacted in every message (issue 14, item 7): a webhook URL holding
user:password and ?token=... whose server is unreachable, answers 500 or 401 or is misspelled
yields outcomes, errors and log lines without the secret; the Postgres destination's DSN
password and S3 errors likewise. One helper does it: orchestration/redaction.py."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestration.redaction import redact, redact_url, url_secrets

SECRET = "secret"  # every secret below holds it: no message may


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "https://user:secret-pw@hooks.example.com/v1?token=secret-tok&x=1&sig=secret-sig",
            "https://***@hooks.example.com/v1?token=***&x=1&sig=***",
        ),
        ("postgresql://c360:secret@db:5432/c360?sslmode=require", "postgresql://***@db:5432/c360?sslmode=require"),
        ("host=db user=c360 password=secret dbname=x", "host=db user=c360 password=*** dbname=x"),
        ("password='a secret' host=db", "password=*** host=db"),
        ("s3://AKIA:secret@bucket/key", "s3://***@bucket/key"),
        ("https://secrettoken@api.example.com/x", "https://***@api.example.com/x"),
        ("GET https://s3/x?X-Amz-Signature=secret&X-Amz-Credential=secret", "GET https://s3/x?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("failed: C360_WEBHOOK_URL=https://a:secret@h/p api_key: secret", "failed: C360_WEBHOOK_URL=https://***@h/p api_key: ***"),
        # nothing secret: left as it is
        ("upload to s3://bucket/key failed: AccessDenied", "upload to s3://bucket/key failed: AccessDenied"),
        ("a monkey=banana, HTTP 500 after 3 attempts", "a monkey=banana, HTTP 500 after 3 attempts"),
    ],
)  # fmt: skip
def test_redact_cuts_userinfo_and_secret_parameters(text, shown):
    assert redact(text) == shown
    assert redact_url(text) == shown


def test_redact_cuts_given_secrets_anywhere():
    assert redact("signed with secret-key-1 at h", ["secret-key-1"]) == "signed with *** at h"
    assert url_secrets("https://u:pw-secret@h/p?token=tok-secret&format=json") == [
        "pw-secret",
        "tok-secret",
    ]


# --- the webhook destination --------------------------------------------------------------


class _Answer(BaseHTTPRequestHandler):
    status = 500

    def _reply(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"error": "boom"}'
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = _reply

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server():
    def start(status: int) -> int:
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
        srv.status = status  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv.server_address[1]

    servers: list[ThreadingHTTPServer] = []
    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(url: str, logged: list[str]):
    from orchestration.activation.destinations.webhook import WebhookClient, WebhookConfig

    config = WebhookConfig(
        url, "secret-signing-key", max_attempts=2, backoff_seconds=0.0, timeout_seconds=2.0
    )
    return config, WebhookClient(config, "canary_sync", sleep=lambda s: None, log=logged.append)


def _rows():
    from orchestration.activation.destinations.rows import Row

    return [Row(f"C{i}", "upsert", {"tier": "gold"}, f"k{i}") for i in range(3)]


def _url(port: int) -> str:
    return f"http://c360:secret-pw@127.0.0.1:{port}/hook?token=secret-tok&sig=secret-sig"


@pytest.mark.parametrize("where", ["unreachable", "http_500"])
def test_webhook_failures_never_show_the_url_credentials(where, server, caplog):
    caplog.set_level(logging.DEBUG)  # httpx logs each request's URL at INFO
    port = _closed_port() if where == "unreachable" else server(500)
    logged: list[str] = []
    config, client = _client(_url(port), logged)
    outcomes = client.send(_rows())
    assert {o.status for o in outcomes.values()} == {"retryable"}
    reasons = [o.reason for o in outcomes.values()]
    assert all(r for r in reasons), reasons
    if where == "http_500":
        assert any("HTTP Request" in r.getMessage() for r in caplog.records), "httpx logged"
    text = "\n".join(
        [*reasons, *logged, repr(config), config.shown_url, caplog.text]
        + [r.getMessage() for r in caplog.records]
    )
    assert SECRET not in text, text
    assert "127.0.0.1" in config.shown_url and "token=***" in config.shown_url


def test_webhook_401_and_a_misspelled_url_raise_without_the_credentials(server):
    from orchestration.activation.destinations.webhook import WebhookAuthError, WebhookConfigError

    _, client = _client(_url(server(401)), [])
    with pytest.raises(WebhookAuthError) as refused:
        client.send(_rows())
    assert "401" in str(refused.value) and SECRET not in str(refused.value)

    _, client = _client("http://c360:secret-pw@127.0.0.1:notaport/hook?token=secret-tok", [])
    with pytest.raises(WebhookConfigError) as bad:
        client.send(_rows())
    assert "C360_WEBHOOK_URL" in str(bad.value) and SECRET not in str(bad.value)
    assert bad.value.__cause__ is None and bad.value.__suppress_context__


def test_the_query_string_of_the_webhook_url_stays_after_the_path():
    from orchestration.activation.destinations.webhook import WebhookConfig

    config = WebhookConfig("https://u:p@h.example/hook?token=t", "k")
    assert config.endpoint("/v1/batches") == "https://u:p@h.example/hook/v1/batches?token=t"


# --- Postgres DSN and S3 errors -------------------------------------------------------------


def test_postgres_destination_errors_never_show_the_dsn_password():
    from orchestration.activation.destinations.postgres_table import (
        PostgresTableConfig,
        PostgresTableConfigError,
        PostgresTableDestination,
    )
    from orchestration.activation.destinations.rows import Row

    port = _closed_port()
    for dsn in (
        f"postgresql://c360:secret-pw@127.0.0.1:{port}/c360?connect_timeout=1",
        f"host=127.0.0.1 port={port} user=c360 password=secret-pw dbname=c360",
    ):
        config = PostgresTableConfig(dsn=dsn, schema="c360", table="audience", max_attempts=1)
        logged: list[str] = []
        with PostgresTableDestination(
            config, "canary_sync", ["tier"], sleep=lambda s: None, log=logged.append
        ) as dest:
            outcomes = dest.send([Row("C1", "upsert", {"tier": "gold"}, "k1")])
        reasons = [o.reason for o in outcomes.values()]
        assert reasons and all(r.startswith("connection: ") for r in reasons), reasons
        assert SECRET not in "\n".join([*reasons, *logged, repr(config)])
    # a DSN libpq cannot parse: its message would quote the DSN
    config = PostgresTableConfig(dsn="host=h password=secret-pw broken", schema="c", table="t")
    with pytest.raises(PostgresTableConfigError) as bad:
        PostgresTableDestination(config, "canary_sync", ["tier"]).send(
            [Row("C1", "upsert", {"tier": "gold"}, "k1")]
        )
    assert "C360_PG_DEST_DSN" in str(bad.value) and SECRET not in str(bad.value)


def test_s3_errors_never_show_credentials():
    from botocore.exceptions import EndpointConnectionError

    from orchestration.activation.destinations.file_drop import _s3_error

    exc = EndpointConnectionError(
        endpoint_url="https://AKIA:secret@minio:9000/b?X-Amz-Signature=secret"
    )
    message = _s3_error(exc)
    assert "minio:9000" in message and SECRET not in message
