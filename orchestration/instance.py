"""The local Dagster instance under C360_HOME (SQLite storage, the duckdb pool limited to 1)."""

from __future__ import annotations

import os
from pathlib import Path

from orchestration.paths import c360_home, landing_dir, outbox_dir, warehouse_path

INSTANCE_YAML = """\
# Written by c360 for local runs. For Postgres storage see dagster.yaml in the repository root.
storage:
  sqlite:
    base_dir: {base}/storage
local_artifact_storage:
  module: dagster.core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {base}
compute_logs:
  module: dagster.core.storage.local_compute_log_manager
  class: LocalComputeLogManager
  config:
    base_dir: {base}/logs
concurrency:
  pools:
    # DuckDB allows one writer: every step that writes the warehouse is in pool "duckdb".
    default_limit: 1
telemetry:
  enabled: false
nux:
  enabled: false
"""


def apply_env_defaults() -> None:
    """Fill in the C360_* and DAGSTER_HOME env vars the code location reads (EnvVar) if unset."""
    home = c360_home()
    os.environ.setdefault("C360_HOME", str(home))
    os.environ.setdefault("C360_WAREHOUSE", str(warehouse_path()))
    os.environ.setdefault("C360_LANDING_DIR", str(landing_dir()))
    os.environ.setdefault("C360_OUTBOX_DIR", str(outbox_dir()))
    os.environ.setdefault("C360_DUCKDB_TEMP_DIR", str(home / "tmp"))
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))


def ensure_instance() -> Path:
    """DAGSTER_HOME with a dagster.yaml: written when missing, and rewritten when it is c360's own
    file for another folder (a home copied or moved keeps its run history in its own folder, not
    the original's); a file a user wrote is never overwritten."""
    apply_env_defaults()
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    wanted = INSTANCE_YAML.format(base=dagster_home)
    if not config.exists():
        config.write_text(wanted)
    else:
        text = config.read_text()
        if text != wanted and text.startswith(_MARK) and _is_ours(text):
            config.write_text(wanted)
    return dagster_home


_MARK = INSTANCE_YAML.splitlines()[0]


def _is_ours(text: str) -> bool:
    """Whether `text` is INSTANCE_YAML for some folder (c360 wrote it, nobody edited it)."""
    line = next((ln for ln in text.splitlines() if ln.strip().startswith("base_dir:")), "")
    base = line.split("base_dir:", 1)[1].strip().removesuffix("/storage")
    return bool(base) and text == INSTANCE_YAML.format(base=base)
