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
    """DAGSTER_HOME with a dagster.yaml (written once, never overwritten)."""
    apply_env_defaults()
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML.format(base=dagster_home))
    return dagster_home
