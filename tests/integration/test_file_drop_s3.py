"""File drop to an S3-compatible bucket, against moto's real S3 server on a loopback port (no
mocks): the object holds exactly the bytes the local file would; a failed upload (missing bucket,
connection cut mid-body) leaves the rows retryable, no object (or the previous one intact), and an
error that names the object but no secret. The s3:// uri is recorded in activation.sync_runs."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from pathlib import Path

import boto3
import duckdb
import pytest
from botocore.exceptions import ClientError

from orchestration.activation.destinations.file_drop import write_audience
from orchestration.activation.runner import run_sync
from orchestration.activation.sync_definition import SyncDefinition

pytestmark = pytest.mark.integration
AS_OF = dt.date(2026, 11, 21)
SECRET = "do-not-log-this-s3cr3t"
FIELDS = {"customer_id": "customer_id", "email": "email", "first_name": "first_name"}


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """A client of the test server; the env the destination reads points at the same server."""
    monkeypatch.setenv("C360_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the failure tests should not wait on backoff
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIATESTKEY",
        aws_secret_access_key=SECRET,
    )


def _warehouse() -> duckdb.DuckDBPyConnection:
    """The marts the planner reads, minimal: 30 members of `seg`, 3 held out (0, 10, 20),
    one without an email (3), one who revoked consent (5) → 25 rows to send."""
    con = duckdb.connect()
    con.execute(
        """
        create schema marts;
        create schema activation;
        create table marts.segment_membership as
            select 'seg' as segment_name, 'c' || lpad(i::varchar, 2, '0') as customer_id,
                i % 10 = 0 as is_holdout
            from range(30) as t (i);
        create table marts.customer_360 as
            select 'c' || lpad(i::varchar, 2, '0') as customer_id,
                case when i <> 3 then 'p' || i || '@example.com' end as email,
                null::varchar as phone, false as is_erased, 'Name' || i as first_name
            from range(30) as t (i);
        create table marts.consent_state as
            select 'p' || i || '@example.com' as contact_point, 'email' as channel,
                'marketing' as purpose,
                case when i = 5 then 'revoked' else 'granted' end as consent_status,
                timestamp '2026-01-01' as consent_captured_at, false as is_expired,
                false as is_suppressed, i <> 5 as is_consented
            from range(30) as t (i);
        """
    )
    return con


def _sync(uri: str | None, file_format: str = "csv") -> SyncDefinition:
    return SyncDefinition(
        name="drop__seg",
        segment="seg",
        destination="file_drop",
        channel="email",
        purpose="marketing",
        fields=FIELDS,
        mode="upsert",
        file_format=file_format,
        path=Path("drop__seg.yml"),
        uri=uri,
    )


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_s3_object_holds_exactly_the_local_files_rows_and_sync_runs_records_the_uri(
    s3, tmp_path, file_format
):
    bucket = f"drops-{file_format}"
    s3.create_bucket(Bucket=bucket)
    local = run_sync(_warehouse(), _sync(None, file_format), AS_OF, "run-local", tmp_path / "a")
    con = _warehouse()
    s3_sync = _sync(f"s3://{bucket}/audiences/email", file_format)
    out = run_sync(con, s3_sync, AS_OF, "run-s3", tmp_path / "b")

    key = f"audiences/email/drop__seg__{AS_OF}.{file_format}"
    assert (out.status, out.sent, out.ok, out.retryable) == ("success", 25, 25, 0)
    assert out.output_uri == f"s3://{bucket}/{key}"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == Path(local.output_uri).read_bytes()
    downloaded = tmp_path / f"downloaded.{file_format}"
    downloaded.write_bytes(body)
    rows = duckdb.sql(f"select customer_id from '{downloaded}' order by 1").fetchall()
    expected = {f"c{i:02d}" for i in range(30)} - {"c00", "c10", "c20", "c03", "c05"}
    assert [r[0] for r in rows] == sorted(expected)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {
        "c360-sync": "drop__seg",
        "c360-as-of": str(AS_OF),
        "c360-rows": "25",
    }
    # only the final object, and no local copy of the PII left behind
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [key]
    assert not any((tmp_path / "b").rglob(f"*.{file_format}*"))
    recorded = con.execute(
        "select status, sent, ok, output_uri from activation.sync_runs where run_id = 'run-s3'"
    ).fetchall()
    assert recorded == [("success", 25, 25, f"s3://{bucket}/{key}")]
    outcomes = con.execute(
        "select outcome, count(*) from activation.contact_history group by 1 order by 1"
    ).fetchall()
    assert outcomes == [("filtered", 2), ("held_out", 3), ("ok", 25)]


def test_missing_bucket_fails_the_sync_with_retryable_rows_and_a_clear_message(s3, tmp_path):
    con = _warehouse()
    out = run_sync(con, _sync("s3://no-such-bucket/x"), AS_OF, "run-1", tmp_path)

    uri = f"s3://no-such-bucket/x/drop__seg__{AS_OF}.csv"
    assert (out.status, out.sent, out.ok, out.retryable) == ("failed", 25, 0, 25)
    assert out.output_uri == uri
    run = con.execute(
        "select status, retryable, output_uri from activation.sync_runs where run_id = 'run-1'"
    ).fetchall()
    assert run == [("failed", 25, uri)]
    errors = con.execute(
        "select outcome, error_message, count(*) from activation.contact_history "
        "where outcome not in ('filtered', 'held_out') group by all"
    ).fetchall()
    assert errors == [
        (
            "retryable",
            f"upload to {uri} failed: NoSuchBucket: The specified bucket does not exist",
            25,
        )
    ]
    assert SECRET not in errors[0][1] and "AKIATESTKEY" not in errors[0][1]
    assert not any(tmp_path.rglob("*.csv*"))  # the staged copy is gone too

    # the bucket is created: a rerun of the same as_of retries the failed drop, whole
    s3.create_bucket(Bucket="no-such-bucket")
    retry = run_sync(con, _sync("s3://no-such-bucket/x"), AS_OF, "run-2", tmp_path)
    assert (retry.status, retry.sent, retry.ok) == ("success", 25, 25)
    body = s3.get_object(Bucket="no-such-bucket", Key=f"x/drop__seg__{AS_OF}.csv")["Body"].read()
    assert len(body.decode().strip().splitlines()) == 1 + 25
    again = run_sync(con, _sync("s3://no-such-bucket/x"), AS_OF, "run-3", tmp_path)
    assert again.sent == 0, "delivered rows are not resent"


def test_missing_credentials_fail_clearly_without_calling_s3(s3, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = write_audience(
        _warehouse(), "select 'c1' as f_customer_id", ["customer_id"], tmp_path, "s", AS_OF,
        uri="s3://drops-csv/x",
    )  # fmt: skip
    assert not result.ok and result.rows == 0
    assert result.error == (
        f"upload to s3://drops-csv/x/s__{AS_OF}.csv failed: "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set"
    )


class CuttingProxy:
    """A TCP proxy to the S3 server that forwards at most `limit` bytes of each request, then
    closes the connection: an upload that dies half-way through its body."""

    def __init__(self, target: str, limit: int) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target, self.limit = (host, int(port)), limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.cut = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        forwarded = 0
        while True:
            data = client.recv(65536)
            if not data:
                break
            if forwarded + len(data) > self.limit:
                upstream.sendall(data[: self.limit - forwarded])
                self.cut += 1
                break
            upstream.sendall(data)
            forwarded += len(data)
        for s in (client, upstream):
            s.close()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


def test_upload_cut_mid_body_leaves_no_partial_object_and_the_previous_one_intact(
    s3, s3_endpoint, tmp_path, monkeypatch
):
    s3.create_bucket(Bucket="drops-cut")
    big = "select 'c' || i as f_customer_id, repeat('x', 200) as f_note from range(2000) as t (i)"
    previous_key = f"cut/s__{AS_OF}.csv"
    s3.put_object(Bucket="drops-cut", Key=previous_key, Body=b"customer_id,note\nold,row\n")
    proxy = CuttingProxy(s3_endpoint, limit=20_000)  # the file is ~400 kB
    monkeypatch.setenv("C360_S3_ENDPOINT_URL", proxy.url)
    try:
        con = duckdb.connect()
        for as_of in (AS_OF, AS_OF + dt.timedelta(days=1)):  # an existing key, then a new one
            result = write_audience(
                con, big, ["customer_id", "note"], tmp_path, "s", as_of, uri="s3://drops-cut/cut"
            )
            assert not result.ok and result.rows == 0
            assert result.error.startswith(
                f"upload to s3://drops-cut/cut/s__{as_of}.csv failed: ConnectionClosedError"
            )
            assert SECRET not in result.error
    finally:
        proxy.close()
    assert proxy.cut >= 2
    assert s3.get_object(Bucket="drops-cut", Key=previous_key)["Body"].read() == (
        b"customer_id,note\nold,row\n"
    )
    with pytest.raises(ClientError, match=r"\(404\)"):
        s3.head_object(Bucket="drops-cut", Key=f"cut/s__{AS_OF + dt.timedelta(days=1)}.csv")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="drops-cut")["Contents"]] == [previous_key]
    assert s3.list_multipart_uploads(Bucket="drops-cut").get("Uploads", []) == []
    assert not any(tmp_path.rglob("*.csv*"))
