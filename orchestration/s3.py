"""The S3 client every S3-compatible path of c360 uses (landing files in, file drops out): built
from the environment only — never ~/.aws or instance metadata, so a missing credential fails at
once instead of after a metadata timeout."""

from __future__ import annotations

import os
from typing import Any


def s3_client_from_env(
    endpoint_vars: tuple[str, ...], missing_credentials: Exception, bad_setting: type[Exception]
) -> Any:
    """A boto3 S3 client (imported here: boto3 is slow to import and only S3 paths need it).

    The endpoint is the first of `endpoint_vars` that is set (none: AWS); credentials from
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (`missing_credentials` is raised without them) and
    AWS_SESSION_TOKEN; region from AWS_REGION / AWS_DEFAULT_REGION; botocore's retries up to
    AWS_MAX_ATTEMPTS (default 3; `bad_setting` is raised for anything but a positive integer)."""
    import boto3
    from botocore.config import Config

    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise missing_credentials
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "3")
    if not attempts.isdigit() or int(attempts) < 1:
        raise bad_setting(f"AWS_MAX_ATTEMPTS: {attempts!r} is not a positive integer")
    endpoint = next((os.environ[v] for v in endpoint_vars if os.environ.get(v)), None)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        connect_timeout=10,
        read_timeout=60,
        # transient errors (5xx, throttling, resets) are retried by botocore itself
        retries={"mode": "standard", "max_attempts": int(attempts)},
        # S3-compatible servers (MinIO, moto, Ceph) are usually addressed by path, not by a
        # bucket subdomain that a local endpoint cannot resolve.
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
        config=config,
    )
