"""Sync definitions validate with errors naming the file and field."""

from pathlib import Path

import pytest

from orchestration.activation.sync_definition import SyncDefinitionError
from orchestration.activation.syncs import load_all_syncs, load_sync


def test_committed_syncs_are_valid_and_reference_segments():
    from orchestration.segments.model import load_all

    names = {s.name for s in load_all()}
    syncs = load_all_syncs()
    assert syncs and all(s.segment in names for s in syncs)
    # the documented example is a valid sync too
    examples = load_all_syncs(Path(__file__).resolve().parents[2] / "docs" / "examples")
    # the documented examples are valid syncs of registered destinations, the webhook's among them
    from orchestration.activation.destinations import registry

    assert "webhook" in [s.destination for s in examples]
    assert {s.destination for s in examples} <= set(registry.kinds())
    assert all(s.segment in names for s in examples)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "segment: vip\ndestination: moon\nchannel: email\nfields: {e: email}\n",
            "destination: 'moon'",
        ),
        (
            "segment: vip\ndestination: file_drop\nchannel: fax\nfields: {e: email}\n",
            "channel: 'fax'",
        ),
        (
            "segment: vip\ndestination: file_drop\nchannel: email\nfields: {e: password}\n",
            "not customer_360 columns: password",
        ),
        (
            "segment: vip\ndestination: file_drop\nchannel: email\nfields: {e: email}\nextra: 1\n",
            "unknown field",
        ),
    ],
)
def test_invalid_sync_errors_name_file_and_field(tmp_path, body, message):
    p = tmp_path / "s.yml"
    p.write_text("name: s\n" + body)
    with pytest.raises(SyncDefinitionError) as err:
        load_sync(p)
    assert str(p) in str(err.value) and message in str(err.value)


def test_webhook_sync_settings_are_validated(tmp_path):
    base = (
        "name: w\ndescription: d\nsegment: vip\ndestination: webhook\nchannel: email\n"
        "fields:\n  email: email\n"
    )
    path = tmp_path / "w.yml"
    path.write_text(base + "mode: mirror\nbatch_rows: 500\n")
    sync = load_sync(path)
    assert (sync.mode, sync.batch_rows, sync.identifier) == ("mirror", 500, "customer_id")
    for extra, message in [
        ("batch_rows: 5000\n", "batch_rows: an integer from 1 to 1000"),
        ("batch_bytes: 10\n", "batch_bytes: an integer from 1024"),
        ("mode: replace\n", "mode: 'replace' not one of"),
        ("identifier: e_mail\n", "identifier: 'e_mail' is not a customer_360 column"),
        ("max_remove_share: 2\n", "max_remove_share: a share between 0 and 1"),
    ]:
        path.write_text(base + extra)
        with pytest.raises(SyncDefinitionError, match=f"w.yml: {message}"):
            load_sync(path)
    path.write_text(base.replace("webhook", "file_drop") + "mode: mirror\n")
    with pytest.raises(SyncDefinitionError, match="a file drop only supports upsert"):
        load_sync(path)
