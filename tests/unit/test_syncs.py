"""Sync definitions validate with errors naming the file and field."""

import pytest

from orchestration.activation.syncs import SyncDefinitionError, load_all_syncs, load_sync


def test_committed_syncs_are_valid_and_reference_segments():
    from orchestration.segments.model import load_all

    names = {s.name for s in load_all()}
    syncs = load_all_syncs()
    assert syncs and all(s.segment in names for s in syncs)


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
