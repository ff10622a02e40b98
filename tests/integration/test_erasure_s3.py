"""Erasure reaches S3 (issue 16, core 3), against moto's real S3 server on a loopback port: a
person planted in an S3 landing bucket (a CSV object shared with others, a Parquet object of only
theirs) and ingested through C360_LANDING_URL, and sent in an S3 file drop (a versioned bucket),
is erased: every version of every object in every bucket, and every local file, holds 0 bytes of
them; the other people's rows stay; the receipt lists each object; the next landing sync
downloads nothing; a re-delivered object with the person does not bring them back."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.activation.runner import run_sync
from orchestration.activation.sync_definition import SyncDefinition
from orchestration.ingest.s3_landing import sync_entity
from orchestration.privacy.erasure import erase_pending
from orchestration.warehouse import connect
from tests.ingest_night import night

pytestmark = pytest.mark.integration
AS_OF = dt.date(2026, 11, 21)
SECRET = "do-not-log-this-s3cr3t"
EMAIL = "quillonne.zyxcanary@example.org"
CONTACT_ID = "C-ZYXCANARY"
CUSTOMER_ID = "CUST-ZYXCANARY"
STREET = "7 impasse Zyxcanarique"
NEEDLES = [n.lower().encode() for n in (EMAIL, CONTACT_ID, CUSTOMER_ID, "Zyxcanar")]
CONTRACTS = ["crm__contacts", "consent__events", "consent__erasure_requests"]
PREFIX = "exports/c360"
DAY = f"dt={AS_OF}"


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_ERASURE_KEY", "s3-erasure-test-key-" + "k" * 32)
    monkeypatch.setenv("C360_LANDING_URL", f"s3://landing/{PREFIX}")
    monkeypatch.setenv("C360_LANDING_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("C360_S3_ENDPOINT_URL", s3_endpoint)
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


def _plant_landing(s3, generated: Path) -> bytes:
    """Upload the generated CRM contacts with the person appended, their consent as an object of
    its own, and the erasure request; returns the contacts object's original bytes."""
    s3.create_bucket(Bucket="landing")
    contacts = next((generated / "crm" / "contacts").rglob("*.csv")).read_text()
    person = (
        f"{CONTACT_ID},A000001,Quillonne,Zyxcanary,{EMAIL},,,1980-02-03,{STREET},,Lyon,"
        "69001,Auvergne-Rhone-Alpes,FR,Europe/Paris,2020-01-01T00:00:00Z,"
        "2020-01-01T00:00:00Z,false\n"
    )
    body = (contacts + person).encode()
    s3.put_object(Bucket="landing", Key=f"{PREFIX}/crm/contacts/{DAY}/part-00000.csv", Body=body)
    consent = pa.table(
        {
            "consent_event_id": ["CE-ZYXCANARY"],
            "contact_point": [EMAIL],
            "contact_point_type": ["email"],
            "channel": ["email"],
            "purpose": ["marketing"],
            "status": ["granted"],
            "captured_at": ["2026-11-20T03:04:05Z"],
            "expires_at": [None],
            "source": ["preference_centre"],
        }
    )
    generated_consent = next((generated / "consent" / "events").rglob("*.parquet"))
    s3.upload_file(
        str(generated_consent), "landing", f"{PREFIX}/consent/events/{DAY}/part-00000.parquet"
    )
    sink = io.BytesIO()
    pq.write_table(consent, sink)
    s3.put_object(
        Bucket="landing", Key=f"{PREFIX}/consent/events/{DAY}/canary.parquet", Body=sink.getvalue()
    )
    request = (
        "erasure_request_id,contact_point,contact_point_type,requested_at\n"
        f"ER-S3-1,{EMAIL.upper()},email,{AS_OF}T10:00:00Z\n"
    )
    s3.put_object(
        Bucket="landing",
        Key=f"{PREFIX}/consent/erasure_requests/{DAY}/requests.csv",
        Body=request.encode(),
    )
    return body


def _marts(con) -> None:
    """The marts a file drop reads: 12 members of `seg`, the person among them, all consented."""
    con.execute(
        f"""
        create or replace table marts.segment_membership as
            select 'seg' as segment_name, 'CUST-' || i as customer_id, false as is_holdout
            from range(11) as t (i)
            union all select 'seg', '{CUSTOMER_ID}', false;
        create or replace table marts.customer_360 as
            select 'CUST-' || i as customer_id, 'p' || i || '@example.com' as email,
                null::varchar as phone, false as is_erased, 'Name' || i as first_name
            from range(11) as t (i)
            union all select '{CUSTOMER_ID}', '{EMAIL}', null, false, 'Quillonne';
        create or replace table marts.consent_state as
            select email as contact_point, 'email' as channel, 'marketing' as purpose,
                'granted' as consent_status, timestamp '2026-01-01' as consent_captured_at,
                false as is_expired, false as is_suppressed, true as is_consented
            from marts.customer_360;
        create or replace table marts.customer_id_map as
            select 'crm' as source, 'contacts' as entity, '{CONTACT_ID}' as source_record_id,
                'k' as record_key, '{CUSTOMER_ID}' as customer_id;
        """
    )


def _sync() -> SyncDefinition:
    fields = {"customer_id": "customer_id", "email": "email", "first_name": "first_name"}
    return SyncDefinition(
        name="drop__seg", segment="seg", destination="file_drop", channel="email",
        purpose="marketing", fields=fields, mode="upsert", file_format="csv",
        path=Path("drop__seg.yml"), uri="s3://drops/audiences",
    )  # fmt: skip


def _every_object(s3) -> dict[str, bytes]:
    """The bytes of every version of every object in every bucket."""
    out = {}
    for b in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=b["Name"]):
            for v in page.get("Versions", []):
                got = s3.get_object(Bucket=b["Name"], Key=v["Key"], VersionId=v["VersionId"])
                out[f"s3://{b['Name']}/{v['Key']}@{v['VersionId']}"] = got["Body"].read()
    return out


def _hits(blobs: dict[str, bytes]) -> list[str]:
    """The names whose bytes hold the person (case-insensitive)."""
    return [name for name, data in blobs.items() if any(n in data.lower() for n in NEEDLES)]


def test_erasure_rewrites_s3_landing_objects_and_drops_and_a_redelivery_stays_erased(s3, tmp_path):
    from demo.generator import generate

    generate(60, 3, AS_OF, tmp_path / "gen", tmp_path / "truth", progress=None)
    original = _plant_landing(s3, tmp_path / "gen")
    mirror = tmp_path / "mirror"  # C360_LANDING_DIR: the local copy of the bucket
    outbox = tmp_path / "outbox"
    con = connect(tmp_path / "wh.duckdb")
    for cid in CONTRACTS:
        _, gate, published = night(con, cid, mirror, "n1", AS_OF)
        assert gate.passed and published, (cid, gate.failures)
    assert con.execute(
        "select count(*) from raw.crm__contacts where contact_id = ?", [CONTACT_ID]
    ).fetchone() == (1,)

    s3.create_bucket(Bucket="drops")
    s3.put_bucket_versioning(Bucket="drops", VersioningConfiguration={"Status": "Enabled"})
    _marts(con)
    sent = run_sync(con, _sync(), AS_OF, "run-drop", outbox)
    assert (sent.status, sent.ok) == ("success", 12)
    drop_key = f"audiences/drop__seg__{AS_OF}.csv"
    planted = [k.rsplit("/", 1)[1].split("@")[0] for k in _hits(_every_object(s3))]
    assert sorted(planted) == sorted(
        ["part-00000.csv", "canary.parquet", "requests.csv", drop_key.rsplit("/", 1)[1]]
    ), "the person is planted in every kind of object"

    summary = erase_pending(con, AS_OF, "run-erase", landing=mirror, outbox=outbox)
    assert summary.requests == 1

    blobs = _every_object(s3)
    assert _hits(blobs) == []
    local = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    # the generator's own output is not c360's; the warehouse file's tables are the canary's
    # (test_erasure_canary.py: free blocks may keep deleted bytes, docs/privacy.md "Limits")
    local = {
        k: v
        for k, v in local.items()
        if "/gen/" not in k and "/truth/" not in k and not k.endswith((".duckdb", ".wal"))
    }
    assert any("/mirror/crm/contacts/" in k for k in local)  # the rewritten local copy
    assert _hits(local) == []
    # the other people stay: 60 generated contacts in the landing object, 11 in the drop
    (contacts,) = [v for k, v in blobs.items() if "crm/contacts/" in k]
    assert contacts.decode().count("\n") == original.decode().count("\n") - 1
    (drop,) = [v for k, v in blobs.items() if drop_key in k]
    assert len(drop.decode().strip().splitlines()) == 1 + 11
    head = s3.head_object(Bucket="drops", Key=drop_key)
    assert head["Metadata"]["c360-rows"] == "11" and head["ContentType"] == "text/csv"
    assert not any("canary.parquet" in k or "requests.csv" in k for k in blobs)  # deleted

    places, status, files_touched = con.execute(
        "select places, status, files_touched from audit.erasure_receipts"
    ).fetchone()
    where = {p["place"]: p for p in json.loads(places)}
    contacts_uri = f"s3://landing/{PREFIX}/crm/contacts/{DAY}/part-00000.csv"
    assert where[contacts_uri]["what"] == "landing object"
    assert where[contacts_uri]["action"] == "rewritten without the rows"
    assert where[f"s3://landing/{PREFIX}/consent/events/{DAY}/canary.parquet"]["action"] == (
        "deleted (no row left)"
    )
    assert f"s3://landing/{PREFIX}/consent/erasure_requests/{DAY}/requests.csv" in where
    assert where[f"s3://drops/{drop_key}"] == {
        "place": f"s3://drops/{drop_key}",
        "what": "file drop object",
        "action": "rewritten without the rows; 1 older version(s) deleted",
        "rows": 1,
        "files": 1,
    }
    assert status == "done" and files_touched >= 4
    assert EMAIL not in places and SECRET not in places

    # the manifest agrees with the rewritten local copies: nothing to download again
    for source, entity, suffix in [("crm", "contacts", ".csv"), ("consent", "events", ".parquet")]:
        assert sync_entity(mirror, source, entity, (suffix,), f"s3://landing/{PREFIX}") == []

    # the source re-delivers the original object under a new key: the tombstones drop the person
    s3.put_object(
        Bucket="landing", Key=f"{PREFIX}/crm/contacts/{DAY}/redelivered.csv", Body=original
    )
    batch, gate, published = night(con, "crm__contacts", mirror, "n2", AS_OF)
    assert gate.passed and published and batch.erased == 1
    assert con.execute(
        "select count(*) from raw.crm__contacts where contact_id = ? or lower(email) = ?",
        [CONTACT_ID, EMAIL],
    ).fetchone() == (0,)
    con.close()


def test_an_unreachable_drop_bucket_fails_the_erasure_and_leaves_it_pending(s3, tmp_path):
    """The drop's bucket is gone: the step fails naming the object (no secret), the warehouse is
    rolled back (the request is still there, no receipt), so the next night carries it out."""
    con = connect(tmp_path / "wh.duckdb")
    con.execute(
        "create table raw.consent__erasure_requests (erasure_request_id varchar, "
        "contact_point varchar, contact_point_type varchar, requested_at timestamp, "
        "_batch_id varchar, _loaded_at timestamp, _source_file varchar)"
    )
    con.execute(
        "insert into raw.consent__erasure_requests values ('ER-S3-2', ?, 'email', "
        "timestamp '2026-11-21 10:00:00', 'b', now(), 'f')",
        [EMAIL],
    )
    con.execute("create table activation.sync_runs (run_id varchar, output_uri varchar)")
    con.execute("insert into activation.sync_runs values ('r', 's3://gone-bucket/a/x.csv')")
    from orchestration.privacy.s3_objects import ErasureS3Error

    with pytest.raises(ErasureS3Error) as err:
        erase_pending(con, AS_OF, "run-1", landing=tmp_path / "l", outbox=tmp_path / "o")
    assert "s3://gone-bucket/a/x.csv" in str(err.value) and "NoSuchBucket" in str(err.value)
    assert SECRET not in str(err.value)
    assert con.execute("select count(*) from raw.consent__erasure_requests").fetchone() == (1,)
    assert con.execute("select count(*) from audit.erasure_receipts").fetchone() == (0,)
    con.close()
