"""Where things live: repository folders and the C360_HOME runtime folders (env-configurable)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def contracts_dir() -> Path:
    return REPO_ROOT / "data_contracts"


def dbt_project_dir() -> Path:
    return REPO_ROOT / "dbt_project"


def c360_home() -> Path:
    """Runtime home: warehouse, landing, dagster home. `C360_HOME`, default `.c360/` in the repo."""
    return Path(os.environ.get("C360_HOME", REPO_ROOT / ".c360")).resolve()


def warehouse_path() -> Path:
    return Path(os.environ.get("C360_WAREHOUSE", c360_home() / "warehouse.duckdb")).resolve()


def landing_dir() -> Path:
    return Path(os.environ.get("C360_LANDING_DIR", c360_home() / "landing")).resolve()


def truth_dir() -> Path:
    """Generator ground truth and defect manifest: outside the landing folder on purpose."""
    return c360_home() / "truth"


def outbox_dir() -> Path:
    return Path(os.environ.get("C360_OUTBOX_DIR", c360_home() / "outbox")).resolve()


def reports_dir() -> Path:
    """Data-quality HTML reports: `C360_REPORTS_DIR`, default `<C360_HOME>/reports`."""
    return Path(os.environ.get("C360_REPORTS_DIR", c360_home() / "reports")).resolve()


def home_env(home: Path, landing: Path | None = None) -> dict[str, str]:
    """The env vars that put every runtime file of one c360 home under `home` (the warehouse, the
    Dagster instance, outbox and spill folder); landing files at `landing`, default home/landing."""
    return {
        "C360_HOME": str(home),
        "C360_WAREHOUSE": str(home / "warehouse.duckdb"),
        "C360_LANDING_DIR": str(landing if landing is not None else home / "landing"),
        "C360_OUTBOX_DIR": str(home / "outbox"),
        "C360_DUCKDB_TEMP_DIR": str(home / "tmp"),
        "DAGSTER_HOME": str(home / "dagster"),
    }
