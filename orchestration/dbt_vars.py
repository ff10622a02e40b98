"""The dbt vars of a run: dbt_project.yml's `vars`, with top-level keys replaced from the env.

C360_DBT_VARS holds a YAML (or JSON) mapping. Like `dbt --vars`, each of its top-level keys
replaces the project's value of that key as a whole (identity, survivorship, ...), so an
environment — or a test — can tune identity rules without editing the repository. The nightly
dbt build passes them on; the Python side (config validation, the circuit breaker) reads the same.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from orchestration.paths import dbt_project_dir

ENV_VAR = "C360_DBT_VARS"


class DbtVarsError(ValueError):
    """C360_DBT_VARS is not a mapping; the message says so."""


def overrides() -> dict[str, Any]:
    """The mapping in C360_DBT_VARS ({} when unset or blank)."""
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DbtVarsError(f"{ENV_VAR}: not valid YAML or JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise DbtVarsError(f"{ENV_VAR}: must be a mapping of var name to value")
    return value


def project_vars() -> dict[str, Any]:
    """dbt_project.yml's vars with C360_DBT_VARS applied (what dbt sees in a nightly run)."""
    doc = yaml.safe_load((dbt_project_dir() / "dbt_project.yml").read_text())
    return {**(doc.get("vars") or {}), **overrides()}
