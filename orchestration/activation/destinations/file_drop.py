"""File-drop destination: the audience to send written as one CSV or Parquet file per sync/as_of,
into a local folder or an S3-compatible bucket (docs/activation-destinations.md).

Grain: one file per (sync, as_of), one line per person sent. The file is written with DuckDB COPY
(on another warehouse engine: its rows read into a scratch DuckDB, which writes them) to a temporary
name and renamed, so a reader never sees half a file; every row in a completed
file is `ok`. For an `s3://` location the complete local file is then uploaded to its final key
in one PutObject request: S3 makes an object visible only once the request succeeds, so a reader
sees the whole file or nothing, and a failed upload leaves no object behind. A failed write or
upload marks the batch `retryable` (nothing half-sent).

S3 settings come from the environment only: `C360_S3_ENDPOINT_URL` (an S3-compatible endpoint;
unset = AWS), credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
`AWS_SESSION_TOKEN`, region from `AWS_REGION` / `AWS_DEFAULT_REGION`, attempts per request from
`AWS_MAX_ATTEMPTS` (default 3). Secrets are never logged or returned in an error message.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
from pydantic import field_validator

from orchestration.activation.destinations.registry import DestinationSpec
from orchestration.activation.sync_definition import DestinationConfig
from orchestration.contracts.rules_sql import quote_ident, quote_literal
from orchestration.engine import Connection, dialect_of
from orchestration.redaction import redact
from orchestration.s3 import s3_client_from_env as _s3_client

# S3 bucket naming rules (general purpose buckets): 3-63 chars, lowercase, digits, dots, hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# A single PutObject takes at most 5 GiB; beyond that S3 needs a multipart upload, which this
# destination does not do (a 5 GiB audience file is far beyond any expected audience).
MAX_PUT_BYTES = 5 * 1024**3
CONTENT_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


class FileDropConfigError(ValueError):
    """The drop location or the S3 settings are invalid (names the field or env var)."""


@dataclass(frozen=True)
class DropLocation:
    """Where one sync's files go: a local folder, or a bucket and key prefix (no trailing /)."""

    scheme: str  # "file" or "s3"
    path: Path | None = None
    bucket: str = ""
    prefix: str = ""

    def uri_for(self, filename: str) -> str:
        if self.scheme == "s3":
            key = f"{self.prefix}/{filename}" if self.prefix else filename
            return f"s3://{self.bucket}/{key}"
        assert self.path is not None
        return str(self.path / filename)


def parse_drop_uri(uri: str) -> tuple[str, str, str]:
    """Validate a sync's `uri:` → (scheme, bucket or local path, key prefix).

    `s3://bucket[/prefix]` or a local path (absolute, relative to the outbox, or file:///abs).
    Raises FileDropConfigError with a message that never echoes embedded credentials.
    """
    if not isinstance(uri, str) or not uri.strip():
        raise FileDropConfigError("must be a non-empty string")
    if "://" not in uri:
        return "file", uri, ""
    parts = urlsplit(uri)
    if parts.username is not None or parts.password is not None:
        # do not echo the value: it holds a secret
        raise FileDropConfigError(
            "credentials must not be written in the uri (use AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY)"
        )
    if parts.query or parts.fragment:
        raise FileDropConfigError(f"{uri!r}: no query string or fragment allowed")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise FileDropConfigError(f"{uri!r}: a file uri must be file:///absolute/path")
        return "file", parts.path, ""
    if parts.scheme != "s3":
        raise FileDropConfigError(f"{uri!r}: scheme must be s3:// (or a local path)")
    if not _BUCKET.match(parts.netloc) or ".." in parts.netloc:
        raise FileDropConfigError(f"{uri!r}: {parts.netloc!r} is not a valid S3 bucket name")
    prefix = parts.path.removeprefix("/").rstrip("/")  # a trailing / is the folder, not a segment
    if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise FileDropConfigError(f"{uri!r}: the key prefix has an empty, '.' or '..' segment")
    return "s3", parts.netloc, prefix


def resolve_location(uri: str | None, base_dir: Path, sync_name: str) -> DropLocation:
    """The sync's drop location: `uri` if set (relative paths under base_dir), else
    base_dir/<sync_name> (the outbox layout from before `uri:` existed)."""
    if uri is None:
        return DropLocation("file", path=base_dir / sync_name)
    scheme, where, prefix = parse_drop_uri(uri)
    if scheme == "s3":
        return DropLocation("s3", bucket=where, prefix=prefix)
    return DropLocation("file", path=base_dir / where)  # an absolute `where` replaces base_dir


@dataclass(frozen=True)
class FileDropResult:
    """What one drop produced: the final file's uri and its row count, or why it failed."""

    uri: str
    rows: int
    ok: bool
    error: str | None = None


def s3_client_from_env() -> Any:
    """The S3 client of S3 drops, from env only (see module docstring and orchestration/s3.py)."""
    return _s3_client(
        ("C360_S3_ENDPOINT_URL",),
        FileDropConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set"),
        FileDropConfigError,
    )


def _upload(client: Any, local: Path, bucket: str, key: str, metadata: dict[str, str]) -> None:
    """One PutObject of the complete file to its final key (atomic for readers; see module)."""
    size = local.stat().st_size
    if size > MAX_PUT_BYTES:
        raise FileDropConfigError(f"file is {size} bytes, over the {MAX_PUT_BYTES} byte limit")
    with local.open("rb") as body:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentLength=size,
            ContentType=CONTENT_TYPES.get(local.suffix.lstrip("."), "application/octet-stream"),
            Metadata=metadata,
        )


def _s3_error(exc: Exception) -> str:
    """A one-line reason without secrets: botocore messages carry the operation, the S3 error
    code and at most the endpoint URL, never the credentials; user:password@ in a URL and
    secret parameters (X-Amz-Signature=...) are cut all the same (redaction.redact)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        text = f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip().rstrip(":")
    else:
        first = str(exc).splitlines()[0] if str(exc) else ""
        text = f"{type(exc).__name__}: {first}".rstrip(": ")
    return redact(text)


def write_audience(
    con: Connection,
    select_sql: str,
    field_names: list[str],
    base_dir: Path,
    sync_name: str,
    as_of: dt.date,
    file_format: str = "csv",
    uri: str | None = None,
    s3_client: Any | None = None,
) -> FileDropResult:
    """Write the rows of `select_sql` (columns f_<field>) as <sync_name>__<as_of>.<format> to the
    sync's location (`uri`, default base_dir/<sync_name>); one row per person, ordered by the first
    field. `s3_client` overrides the client built from env (tests, callers with their own)."""
    location = resolve_location(uri, base_dir, sync_name)
    filename = f"{sync_name}__{as_of.isoformat()}.{file_format}"
    final_uri = location.uri_for(filename)
    cols = ", ".join(f"{quote_ident('f_' + n)} as {quote_ident(n)}" for n in field_names)
    fmt = "(format csv, header true)" if file_format == "csv" else "(format parquet)"
    if location.scheme == "file":
        assert location.path is not None
        staging: tempfile.TemporaryDirectory[str] | None = None
        folder = location.path
    else:
        # The local copy only exists until the upload is done: it holds PII, and a failed
        # upload is retried by a later run that writes a fresh file.
        base_dir.mkdir(parents=True, exist_ok=True)
        staging = tempfile.TemporaryDirectory(prefix=f".{sync_name}.s3-", dir=base_dir)
        folder = Path(staging.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / filename
        tmp = final.with_suffix(final.suffix + ".partial")
        try:
            rows = _copy_to_file(con, select_sql, cols, tmp, fmt)
            tmp.replace(final)
        except (*_warehouse_errors(), OSError) as exc:
            tmp.unlink(missing_ok=True)
            return FileDropResult(final_uri, 0, False, redact(str(exc).splitlines()[0]))
        if location.scheme == "s3":
            from botocore.exceptions import BotoCoreError, ClientError

            key = final_uri.removeprefix(f"s3://{location.bucket}/")
            metadata = {
                "c360-sync": sync_name,
                "c360-as-of": as_of.isoformat(),
                "c360-rows": str(rows),
            }
            try:
                client = s3_client if s3_client is not None else s3_client_from_env()
                _upload(client, final, location.bucket, key, metadata)
            except FileDropConfigError as exc:
                return FileDropResult(
                    final_uri, 0, False, redact(f"upload to {final_uri} failed: {exc}")
                )
            except (BotoCoreError, ClientError, OSError) as exc:
                return FileDropResult(
                    final_uri, 0, False, redact(f"upload to {final_uri} failed: {_s3_error(exc)}")
                )
        return FileDropResult(final_uri, rows, True)
    finally:
        if staging is not None:
            staging.cleanup()


def _copy_to_file(con: Connection, select_sql: str, cols: str, path: Path, fmt: str) -> int:
    """Write `cols` of the rows of `select_sql`, ordered by the first, to `path` with DuckDB's
    COPY (format options `fmt`); return how many rows. Another engine's rows are read into a
    scratch DuckDB that writes them: the same writer (the same file) whatever the warehouse."""
    target = f"to {quote_literal(str(path))} {fmt}"
    if dialect_of(con) == "duckdb":
        con.execute(f"copy (select {cols} from ({select_sql}) order by 1) {target}")
        return con.execute(f"select count(*) from ({select_sql})").fetchone()[0]
    from orchestration.warehouse import scratch

    rows = con.execute(f"select {cols} from ({select_sql}) as a order by 1").to_arrow_table()
    local = scratch()
    try:
        local.register("audience_rows", rows)
        local.execute(f"copy (select * from audience_rows) {target}")
    finally:
        local.close()
    return rows.num_rows


def _warehouse_errors() -> tuple[type[Exception], ...]:
    """What a failed query raises on either engine."""
    import psycopg2

    return (duckdb.Error, psycopg2.Error)


class FileDropSyncConfig(DestinationConfig):
    """A file_drop sync's settings: where its files go (`uri`, default the outbox)."""

    uri: Any = None

    @field_validator("uri", mode="before")
    @classmethod
    def _valid_uri(cls, uri: Any) -> Any:
        if uri is not None:
            try:
                parse_drop_uri(uri)
            except FileDropConfigError as exc:
                raise ValueError(str(exc)) from None
        return uri


DESTINATION = DestinationSpec(
    kind="file_drop",
    description="the whole consented audience as one CSV or Parquet file per sync and as_of, "
    "in a local folder or an S3-compatible bucket",
    style="file",
    config=FileDropSyncConfig,
    formats=("csv", "parquet"),
    write=write_audience,
    modes=("upsert",),
    top_level=("uri",),
    errors=(FileDropConfigError,),
)
