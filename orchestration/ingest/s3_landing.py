"""Landing files from an S3-compatible bucket (`C360_LANDING_URL=s3://bucket/prefix`).

The objects under `<prefix>/<source>/<entity>/` (same layout as the local landing folder) are
mirrored into `$C360_LANDING_DIR/<source>/<entity>/` at the same relative paths, then read exactly
like local files: the same sha256 cursor (`audit.ingestion_files`), so a re-run with no new or
changed object loads nothing. An object is downloaded only when its ETag differs from the one
recorded for the local copy (or the copy is missing or was altered), into a dot-file first and
renamed, so a reader never sees half a file. An object deleted from the bucket keeps its local
copy (what was published stays traceable).

Settings from the environment only: `C360_LANDING_URL`, `C360_LANDING_S3_ENDPOINT_URL` (empty =
AWS; falls back to `C360_S3_ENDPOINT_URL`), and the standard `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from orchestration.ingest.file_hash import file_sha256
from orchestration.s3 import s3_client_from_env

URL_ENV = "C360_LANDING_URL"
# Per-entity record of what was downloaded: key -> {etag, sha256}. A dot-file: discover() skips it.
MANIFEST = ".s3-landing.json"


class LandingUrlError(ValueError):
    """The landing URL or the bucket cannot be used; the message names the URL, never a secret."""


def landing_url() -> str | None:
    """`C360_LANDING_URL` if set (an `s3://bucket[/prefix]` URL), else None (local landing only)."""
    return os.environ.get(URL_ENV) or None


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise LandingUrlError(f"{URL_ENV}={url!r}: expected s3://bucket[/prefix]")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


def _client() -> Any:
    """The S3 client of landing, from env only (orchestration/s3.py)."""
    return s3_client_from_env(
        ("C360_LANDING_S3_ENDPOINT_URL", "C360_S3_ENDPOINT_URL"),
        LandingUrlError(
            f"{URL_ENV} is set: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set too"
        ),
        LandingUrlError,
    )


def client() -> Any:
    """The landing bucket's S3 client (the erasure step rewrites objects through it too)."""
    return _client()


def entity_prefix(url: str, source: str, entity: str) -> tuple[str, str]:
    """(bucket, key prefix ending in /) of one entity's objects under the landing URL."""
    bucket, prefix = parse_url(url)
    return bucket, f"{prefix}/{source}/{entity}/" if prefix else f"{source}/{entity}/"


def read_manifest(root: Path) -> dict[str, dict]:
    """What was downloaded into one entity folder: relative key -> {etag, sha256}."""
    path = Path(root) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def write_manifest(root: Path, manifest: dict[str, dict]) -> None:
    """Replace the entity folder's manifest atomically."""
    path = Path(root) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(path)


def sync_entity(
    landing_dir: Path, source: str, entity: str, suffixes: tuple[str, ...], url: str
) -> list[Path]:
    """Mirror the objects of `<url>/<source>/<entity>/` with one of `suffixes` into
    `landing_dir/<source>/<entity>/`; return the local paths downloaded by this call."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, base = entity_prefix(url, source, entity)
    root = (Path(landing_dir) / source / entity).resolve()
    manifest = read_manifest(root)
    client = _client()
    fetched: list[Path] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
            for obj in page.get("Contents", []):
                rel = PurePosixPath(obj["Key"][len(base) :])
                # Same filter as discover(); a key that would leave the folder ("..") is refused.
                if rel.suffix not in suffixes or any(p.startswith(".") for p in rel.parts):
                    continue
                local = (root / rel).resolve()
                if root not in local.parents:
                    raise LandingUrlError(f"s3://{bucket}/{obj['Key']}: key leaves {base}")
                etag = obj["ETag"].strip('"')
                seen = manifest.get(str(rel))
                if (
                    seen
                    and seen["etag"] == etag
                    and local.exists()
                    and file_sha256(local) == seen["sha256"]
                ):
                    continue
                local.parent.mkdir(parents=True, exist_ok=True)
                part = local.with_name(f".{local.name}.part")
                client.download_file(bucket, obj["Key"], str(part))
                part.replace(local)
                manifest[str(rel)] = {"etag": etag, "sha256": file_sha256(local)}
                fetched.append(local)
    except (BotoCoreError, ClientError) as exc:
        # botocore messages name the operation and the bucket, never the credentials.
        raise LandingUrlError(f"s3://{bucket}/{base}: cannot list or download: {exc}") from None
    if fetched:
        write_manifest(root, manifest)
    return fetched
