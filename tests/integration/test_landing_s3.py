"""Landing from an S3-compatible bucket (C360_LANDING_URL), against moto's real S3 server on a
loopback port: the same generated files landed locally and in the bucket publish the same raw and
quarantine rows; a second run with no new object downloads and loads nothing; a changed object is
downloaded again and only its new rows land; errors name the URL but no secret."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import boto3
import pytest

from orchestration.contracts.model import source_contract
from orchestration.ingest.s3_landing import MANIFEST, LandingUrlError, sync_entity
from orchestration.warehouse import connect
from tests.ingest_night import night

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="landing_s3")]
AS_OF = dt.date(2026, 11, 21)
SECRET = "do-not-log-this-s3cr3t"
CONTRACTS = ["crm__contacts", "shop__orders", "consent__events"]  # csv, jsonl, parquet


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    from demo.generator import generate

    root = tmp_path_factory.mktemp("gen")
    generate(300, 3, AS_OF, root / "landing", root / "truth", progress=None)
    return root / "landing"


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("C360_LANDING_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIATESTKEY",
        aws_secret_access_key=SECRET,
    )


def _upload(s3, bucket: str, prefix: str, generated: Path, contract_id: str) -> list[str]:
    c = source_contract(contract_id)
    keys = []
    for path in sorted((generated / c.source / c.entity).rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(generated).as_posix()}"
            s3.upload_file(str(path), bucket, key)
            keys.append(key)
    return keys


def _rows(con, contract_id: str) -> tuple[list, list]:
    """Raw and quarantine rows by contract columns (file paths and load times differ)."""
    cols = ", ".join(f'"{c}"' for c in source_contract(contract_id).column_names)
    raw = con.execute(f"select {cols} from raw.{contract_id} order by all").fetchall()
    q = con.execute(
        f"select _rule_id, {cols}, _source_row from quarantine.{contract_id} order by all"
    ).fetchall()
    return raw, q


def test_s3_landing_publishes_the_same_rows_as_local_and_a_rerun_loads_nothing(
    s3, generated, tmp_path, monkeypatch
):
    s3.create_bucket(Bucket="landing")
    for cid in CONTRACTS:
        _upload(s3, "landing", "exports/c360", generated, cid)

    local = connect(tmp_path / "local.duckdb")
    for cid in CONTRACTS:
        _, gate, published = night(local, cid, generated, "local", AS_OF)
        assert gate.passed and published, (cid, gate.failures)

    monkeypatch.setenv("C360_LANDING_URL", "s3://landing/exports/c360")
    mirror = tmp_path / "mirror"  # C360_LANDING_DIR: the local copy of the bucket
    remote = connect(tmp_path / "remote.duckdb")
    for cid in CONTRACTS:
        batch, gate, published = night(remote, cid, mirror, "s3-1", AS_OF)
        assert gate.passed and published, (cid, gate.failures)
        assert batch.extracted > 0
        assert _rows(remote, cid) == _rows(local, cid), cid
        assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated

    # second run, no new object: nothing downloaded, nothing staged, nothing published
    c = source_contract("crm__contacts")
    assert sync_entity(mirror, c.source, c.entity, (".csv",), "s3://landing/exports/c360") == []
    for cid in CONTRACTS:
        again, _, published = night(remote, cid, mirror, "s3-2", AS_OF)
        assert again.batch_id is None and again.extracted == 0 and not published, cid
    audits = remote.execute("select count(*) from audit.ingestion_audit").fetchone()[0]
    assert audits == len(CONTRACTS)

    # a changed object (one more contact) is downloaded again; only the new row lands
    key = "exports/c360/crm/contacts/dt=2026-11-21/part-00000.csv"
    body = s3.get_object(Bucket="landing", Key=key)["Body"].read().decode()
    lines = body.splitlines(keepends=True)
    extra = lines[1].replace(lines[1].split(",", 1)[0], "C-S3-NEW", 1)
    s3.put_object(Bucket="landing", Key=key, Body=(body + extra).encode())
    before = remote.execute("select count(*) from raw.crm__contacts").fetchone()[0]
    batch, gate, published = night(remote, "crm__contacts", mirror, "s3-3", AS_OF)
    assert gate.passed and published, gate.failures
    assert batch.loaded == 1 and batch.deduplicated_in_raw > 0
    assert batch.extracted == batch.loaded + batch.quarantined + batch.deduplicated
    after = remote.execute("select count(*) from raw.crm__contacts").fetchone()[0]
    assert after == before + 1
    assert (mirror / "crm" / "contacts" / MANIFEST).exists()


def test_s3_landing_errors_name_the_url_not_the_secret(s3, tmp_path, monkeypatch):
    with pytest.raises(LandingUrlError, match="expected s3://bucket"):
        sync_entity(tmp_path, "crm", "contacts", (".csv",), "https://bucket/x")
    with pytest.raises(LandingUrlError) as err:
        sync_entity(tmp_path, "crm", "contacts", (".csv",), "s3://no-such-bucket/x")
    assert "s3://no-such-bucket/x/crm/contacts/" in str(err.value)
    assert SECRET not in str(err.value)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(LandingUrlError, match="AWS_SECRET_ACCESS_KEY must be set"):
        sync_entity(tmp_path, "crm", "contacts", (".csv",), "s3://landing/x")
