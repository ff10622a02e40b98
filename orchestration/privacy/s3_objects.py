"""Erasure in S3-compatible buckets: landing objects c360 downloaded and file drops it uploaded.

Two kinds of object hold an erased person outside the home:

- **landing objects** (`C360_LANDING_URL`, orchestration/ingest/s3_landing.py): every object of
  a contract's entity folder that the landing manifest records as downloaded (so already read by
  ingestion). An object delivered after the night's ingestion is not yet c360's: when it is read,
  its rows of the person are dropped by the tombstones and counted `erased`.
- **file drops** (a file_drop sync with an `s3://` uri): every object named by
  `activation.sync_runs.output_uri`.

Decision, the same for both kinds and the same as for local files: an object holding the person
is rewritten without their rows (the other people's rows are still the source's delivery, or the
record of what was sent) by one PutObject of the complete new bytes to the same key, keeping its
content type and metadata (a drop's `c360-rows` becomes the rows left); an object left without any
row is deleted. In a versioned bucket (versioning enabled or suspended) the object's older
versions and delete markers are deleted too: a prior version is a full copy of the person. For a
landing object the manifest records the new ETag and the new bytes' SHA-256, which equal the local
copy's once files.py rewrote it: the next night downloads nothing again.

A bucket that cannot be read or written fails the erasure step (the warehouse transaction rolls
back, no receipt): the request stays pending and is carried out again the next night. Messages
name the object, never a credential.

Grain of the result: one rewritten or deleted object, with the rows dropped per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from orchestration.privacy.files import SUFFIXES, rewrite_data

Needles = dict[tuple[str, str], set[str]]


class ErasureS3Error(RuntimeError):
    """An S3 object holding the person could not be read, rewritten or deleted."""


@dataclass
class ObjectRewrite:
    """One object rewritten (or deleted: `removed`), its kind and rows lost per request id."""

    uri: str
    kind: str  # "landing object" or "file drop object"
    rows_by_request: dict[str, int] = field(default_factory=dict)
    removed: bool = False
    versions_deleted: int = 0
    etag: str | None = None
    sha256: str | None = None


def _versioned(client: Any, bucket: str, cache: dict[str, bool]) -> bool:
    if bucket not in cache:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
        cache[bucket] = status in ("Enabled", "Suspended")
    return cache[bucket]


def _delete_versions(client: Any, bucket: str, key: str, keep: str | None) -> int:
    """Delete every version and delete marker of `key` but `keep`; returns how many."""
    gone = 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if v["Key"] == key and v["VersionId"] != keep:
                client.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
                gone += 1
    return gone


def rewrite_object(
    client: Any, bucket: str, key: str, needles: Needles, kind: str, versioning: dict[str, bool]
) -> ObjectRewrite | None:
    """Rewrite (or delete) one object without the rows holding an identifier in `needles`;
    None when it holds none or no longer exists."""
    from botocore.exceptions import ClientError

    uri = f"s3://{bucket}/{key}"
    suffix = PurePosixPath(key).suffix
    try:
        got = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None  # deleted by its owner since: nothing of the person left there
        raise
    data = got["Body"].read()
    new, dropped, left = rewrite_data(suffix, data, needles)
    if new is None:
        return None
    out = ObjectRewrite(uri, kind, dropped)
    versioned = _versioned(client, bucket, versioning)
    if left == 0:
        client.delete_object(Bucket=bucket, Key=key)
        out.removed = True
        if versioned:
            out.versions_deleted = _delete_versions(client, bucket, key, keep=None)
        return out
    metadata = dict(got.get("Metadata") or {})
    if "c360-rows" in metadata:
        metadata["c360-rows"] = str(left)
    put = client.put_object(
        Bucket=bucket,
        Key=key,
        Body=new,
        ContentType=got.get("ContentType") or "application/octet-stream",
        Metadata=metadata,
    )
    out.etag = put["ETag"].strip('"')
    out.sha256 = hashlib.sha256(new).hexdigest()
    if versioned:
        out.versions_deleted = _delete_versions(client, bucket, key, keep=put.get("VersionId"))
    return out


@contextmanager
def _guard(what: str) -> Iterator[None]:
    """botocore errors become ErasureS3Error naming `what` (botocore's text holds no secret)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ErasureS3Error(f"erasure in {what} failed: {exc}") from None


def _local_copy_is_clean(local: Path, seen: dict, suffix: str, needles: Needles) -> bool:
    """True when the local copy still holds the bytes downloaded (its SHA-256 is the manifest's)
    and none of the person's rows: the object need not be downloaded to be searched."""
    if not local.is_file():
        return False
    data = local.read_bytes()
    if hashlib.sha256(data).hexdigest() != seen.get("sha256"):
        return False
    return rewrite_data(suffix, data, needles)[0] is None


def erase_landing_objects(
    landing_dir: Path,
    url: str,
    folders: Iterable[tuple[str, str, Needles]],
    client: Any | None = None,
) -> list[ObjectRewrite]:
    """Rewrite the downloaded landing objects of each (source, entity, needles) folder under the
    landing URL; the entity folder's manifest gets each rewritten object's new ETag and SHA-256
    (a deleted object leaves it). An object whose local copy is unchanged and holds none of the
    person is not downloaded."""
    from orchestration.ingest import s3_landing

    done: list[ObjectRewrite] = []
    versioning: dict[str, bool] = {}
    for source, entity, needles in folders:
        if not needles:
            continue
        bucket, base = s3_landing.entity_prefix(url, source, entity)
        root = (Path(landing_dir) / source / entity).resolve()
        manifest = s3_landing.read_manifest(root)
        changed = False
        for rel in sorted(manifest):
            suffix = PurePosixPath(rel).suffix
            if suffix not in SUFFIXES:
                continue
            if _local_copy_is_clean(root / rel, manifest[rel], suffix, needles):
                continue
            with _guard(f"s3://{bucket}/{base}{rel}"):
                client = client or s3_landing.client()
                rw = rewrite_object(client, bucket, base + rel, needles, "landing object",
                                    versioning)  # fmt: skip
            if rw is None:
                continue
            done.append(rw)
            changed = True
            if rw.removed:
                del manifest[rel]
            else:
                manifest[rel] = {"etag": rw.etag, "sha256": rw.sha256}
        if changed:
            s3_landing.write_manifest(root, manifest)
    return done


def erase_drop_objects(
    uris: Iterable[str], needles: Needles, client: Any | None = None
) -> list[ObjectRewrite]:
    """Rewrite the S3 file drops named by `uris` (s3://bucket/key) without the person."""
    done: list[ObjectRewrite] = []
    versioning: dict[str, bool] = {}
    for uri in sorted(set(uris)):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not key or PurePosixPath(key).suffix not in SUFFIXES or not needles:
            continue
        with _guard(uri):
            if client is None:
                from orchestration.activation.destinations.file_drop import s3_client_from_env

                client = s3_client_from_env()
            rw = rewrite_object(client, bucket, key, needles, "file drop object", versioning)
        if rw is not None:
            done.append(rw)
    return done
