"""The local Dagster instance file: written once per home, kept pointing at its own home when the
home is copied or moved, and never overwritten once a user edited it."""

import shutil

from orchestration.instance import INSTANCE_YAML, ensure_instance


def _ensure(monkeypatch, home):
    for name in ("C360_HOME", "C360_WAREHOUSE", "C360_LANDING_DIR", "C360_OUTBOX_DIR",
                 "C360_DUCKDB_TEMP_DIR"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    return ensure_instance()


def test_a_copied_home_writes_its_runs_into_its_own_folder(tmp_path, monkeypatch):
    first = tmp_path / "first"
    config = _ensure(monkeypatch, first) / "dagster.yaml"
    assert config.read_text() == INSTANCE_YAML.format(base=first / "dagster")
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    _ensure(monkeypatch, copy)
    text = (copy / "dagster" / "dagster.yaml").read_text()
    assert f"base_dir: {copy / 'dagster'}/storage" in text and str(first) not in text
    assert config.read_text() == INSTANCE_YAML.format(base=first / "dagster")  # untouched


def test_a_dagster_yaml_the_user_edited_is_kept(tmp_path, monkeypatch):
    home = tmp_path / "home"
    config = home / "dagster" / "dagster.yaml"
    config.parent.mkdir(parents=True)
    edited = INSTANCE_YAML.format(base="/elsewhere/dagster") + "run_retries:\n  enabled: true\n"
    config.write_text(edited)
    _ensure(monkeypatch, home)
    assert config.read_text() == edited
    config.write_text("storage:\n  postgres: {}\n")
    _ensure(monkeypatch, home)
    assert config.read_text() == "storage:\n  postgres: {}\n"
