"""A stale dbt manifest is refreshed by the commands that need it (issue 18 core 7): a new model
makes the manifest stale, `ensure_manifest` parses the project once and the model is in it."""

from __future__ import annotations

import json
import shutil

from orchestration import dbt_manifest
from orchestration.paths import dbt_project_dir


def test_a_new_model_makes_the_manifest_stale_and_ensure_parses_it(tmp_path, monkeypatch):
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("logs"))
    monkeypatch.setattr(dbt_manifest, "dbt_project_dir", lambda: project)
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_WAREHOUSE", str(tmp_path / "home" / "warehouse.duckdb"))
    assert not dbt_manifest.is_stale()  # copied with its manifest, timestamps kept
    assert dbt_manifest.ensure_manifest() is False

    model = project / "models/marts/zz_newcomer_probe.sql"
    model.write_text("select 1 as one\n")
    assert dbt_manifest.is_stale()
    assert dbt_manifest.ensure_manifest() is True
    manifest = json.loads(dbt_manifest.manifest_path().read_text())
    assert any(n.endswith(".zz_newcomer_probe") for n in manifest["nodes"])
    assert not dbt_manifest.is_stale()


def test_a_missing_manifest_is_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(dbt_manifest, "dbt_project_dir", lambda: tmp_path)
    (tmp_path / "models").mkdir()
    assert dbt_manifest.is_stale()


def test_dbt_sends_no_usage_events():
    """dbt's anonymous usage tracking is off for the project (dbt_project.yml `flags:`): the parse
    the pipeline runs from records it in the manifest's metadata."""
    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["send_anonymous_usage_stats"] is False
