"""The destination fields of a sync YAML: file_drop's `uri` and postgres_table's `table` are
validated with errors naming the file and the field (and never echoing a credential)."""

from pathlib import Path

import pytest

from orchestration.activation.destinations.file_drop import DropLocation, resolve_location
from orchestration.activation.destinations.postgres_table import to_text
from orchestration.activation.sync_definition import SyncDefinitionError
from orchestration.activation.syncs import load_sync

FILE_DROP = (
    "name: s\nsegment: vip\ndestination: file_drop\nchannel: email\nfields: {email: email}\n"
)
PG = "name: s\nsegment: vip\ndestination: postgres_table\nchannel: email\n"


def _load(tmp_path: Path, body: str):
    path = tmp_path / "s.yml"
    path.write_text(body)
    return load_sync(path)


@pytest.mark.parametrize(
    "uri", ["s3://drops", "s3://my.drops-1/audiences/email/", "/srv/outbox", "partners/acme",
            "file:///srv/outbox"],
)  # fmt: skip
def test_file_drop_uri_accepts_s3_and_local_locations(tmp_path, uri):
    assert _load(tmp_path, FILE_DROP + f"uri: {uri}\n").uri == uri
    assert _load(tmp_path, FILE_DROP).uri is None


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://drops/x", "uri: 'gs://drops/x': scheme must be s3://"),
        ("s3://Drops_2/x", "uri: 's3://Drops_2/x': 'Drops_2' is not a valid S3 bucket name"),
        ("s3://ab/x", "'ab' is not a valid S3 bucket name"),
        ("s3:///x", "'' is not a valid S3 bucket name"),
        ("s3://drops//x", "the key prefix has an empty, '.' or '..' segment"),
        ("s3://drops/../x", "the key prefix has an empty, '.' or '..' segment"),
        ("s3://drops/x?versionId=1", "no query string or fragment allowed"),
        ("file://host/x", "a file uri must be file:///absolute/path"),
        ("''", "uri: must be a non-empty string"),
        ("5", "uri: must be a non-empty string"),
    ],
)
def test_file_drop_uri_errors_name_file_and_field(tmp_path, uri, message):
    with pytest.raises(SyncDefinitionError) as err:
        _load(tmp_path, FILE_DROP + f"uri: {uri}\n")
    assert str(err.value).startswith(f"{tmp_path / 's.yml'}: ") and message in str(err.value)


def test_credentials_in_the_uri_are_refused_without_being_echoed(tmp_path):
    with pytest.raises(SyncDefinitionError) as err:
        _load(tmp_path, FILE_DROP + "uri: s3://AKIAXXX:sup3rsecret@drops/x\n")
    assert "uri: credentials must not be written in the uri" in str(err.value)
    assert "sup3rsecret" not in str(err.value) and "AKIAXXX" not in str(err.value)


def test_uri_only_on_file_drop_and_table_only_on_postgres_table(tmp_path):
    webhook = FILE_DROP.replace("file_drop", "webhook")
    with pytest.raises(SyncDefinitionError, match=r"s\.yml: uri: only a file_drop sync has a uri"):
        _load(tmp_path, webhook + "uri: s3://drops\n")
    with pytest.raises(SyncDefinitionError, match=r"s\.yml: table: only a postgres_table sync"):
        _load(tmp_path, FILE_DROP + "table: a.b\n")


def test_drop_location_defaults_to_the_outbox_layout(tmp_path):
    assert resolve_location(None, tmp_path, "s") == DropLocation("file", path=tmp_path / "s")
    assert resolve_location("rel/dir", tmp_path, "s").path == tmp_path / "rel" / "dir"
    assert resolve_location("/abs/dir", tmp_path, "s").path == Path("/abs/dir")
    s3 = resolve_location("s3://drops/a/b/", tmp_path, "s")
    assert (s3.bucket, s3.prefix, s3.uri_for("f.csv")) == ("drops", "a/b", "s3://drops/a/b/f.csv")
    assert resolve_location("s3://drops", tmp_path, "s").uri_for("f.csv") == "s3://drops/f.csv"


def test_postgres_table_sync_loads(tmp_path):
    body = PG + "table: audiences.lapsed_high_value\nmode: mirror\nbatch_rows: 200\n"
    sync = _load(tmp_path, body + "fields: {email: email, first_name: first_name}\n")
    assert (sync.destination, sync.table, sync.batch_rows) == (
        "postgres_table",
        "audiences.lapsed_high_value",
        200,
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("fields: {email: email}\n", "table: required"),
        ("table: lapsed\nfields: {email: email}\n", "table: 'lapsed' must be schema.table"),
        ("table: a.b.c\nfields: {email: email}\n", "table: 'a.b.c' must be schema.table"),
        ("table: Audiences.x\nfields: {email: email}\n", "must be schema.table"),
        ('table: "a.x; drop table y"\nfields: {email: email}\n', "must be schema.table"),
        ("table: a.x\nfields: {Email: email}\n", "fields: not usable as column names"),
        ("table: a.x\nfields: {e-mail: email}\n", "fields: not usable as column names"),
        ("table: a.x\nfields: {updated_at: email}\n", "fields: updated_at: reserved column"),
    ],
)
def test_postgres_table_errors_name_file_and_field(tmp_path, extra, message):
    with pytest.raises(SyncDefinitionError) as err:
        _load(tmp_path, PG + extra)
    assert str(err.value).startswith(f"{tmp_path / 's.yml'}: ") and message in str(err.value)


def test_field_values_are_stored_as_text():
    assert [to_text(v) for v in [None, "a b", 3, 2.5, True, [1, "x"], {"b": 1, "a": 2}]] == [
        None,
        "a b",
        "3",
        "2.5",
        "true",
        '[1,"x"]',
        '{"a":2,"b":1}',
    ]
