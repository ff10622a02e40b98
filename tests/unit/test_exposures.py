"""dbt exposures are generated from the sync YAML: one application exposure per sync, current with
dbt_project/syncs/, and `c360 segments compile --check` fails when they are stale."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from orchestration.paths import dbt_project_dir
from orchestration.segments import compiler
from orchestration.segments.exposures import exposures_path, exposures_yaml


def test_committed_exposures_are_current_with_the_syncs() -> None:
    assert exposures_path().read_text() == exposures_yaml(), "run `c360 segments compile`"


def test_one_application_exposure_per_sync_on_the_audience_marts() -> None:
    syncs = sorted(p.stem for p in (dbt_project_dir() / "syncs").glob("*.yml"))
    exposures = yaml.safe_load(exposures_yaml())["exposures"]
    assert sorted(e["name"] for e in exposures) == syncs
    for exposure in exposures:
        assert exposure["type"] == "application"
        assert exposure["owner"]["name"]
        assert "ref('segment_membership')" in exposure["depends_on"]
        assert "ref('consent_state')" in exposure["depends_on"]


def test_a_new_sync_becomes_an_exposure_with_its_description(tmp_path: Path) -> None:
    (tmp_path / "file_drop__vip_test.yml").write_text(
        "name: file_drop__vip_test\ndescription: VIPs for the test team.\nsegment: vip\n"
        "destination: file_drop\nchannel: email\npurpose: marketing\nmode: upsert\n"
        "format: csv\nfields:\n  customer_id: customer_id\n  email: email\n"
    )
    (exposure,) = yaml.safe_load(exposures_yaml(tmp_path))["exposures"]
    assert exposure["name"] == "file_drop__vip_test"
    assert exposure["description"].startswith("VIPs for the test team.")
    assert exposure["meta"] == {
        "segment": "vip",
        "destination": "file_drop",
        "channel": "email",
        "fields": ["customer_id", "email"],
    }


def test_manifest_holds_the_exposures_with_their_dependencies() -> None:
    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    for exposure in yaml.safe_load(exposures_yaml())["exposures"]:
        nodes = exposures[exposure["name"]]["depends_on"]["nodes"]
        assert "model.c360.segment_membership" in nodes


def test_check_fails_when_the_exposures_are_stale(tmp_path: Path, monkeypatch, capsys) -> None:
    from orchestration.cli import main

    stale = tmp_path / "_syncs.yml"
    stale.write_text(exposures_yaml().replace("c360 activation", "someone else"))
    monkeypatch.setattr(compiler, "exposures_path", lambda: stale)
    assert main(["segments", "compile", "--check"]) == 1
    assert str(stale) in capsys.readouterr().err
    stale.write_text(exposures_yaml())
    assert main(["segments", "compile", "--check"]) == 0
