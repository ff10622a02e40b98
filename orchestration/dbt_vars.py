"""The dbt vars of a run: dbt_project.yml's `vars`, with C360_DBT_VARS merged in deeply.

C360_DBT_VARS holds a YAML (or JSON) mapping that is merged into the project's vars like a JSON
merge patch (RFC 7396): a mapping merges key by key into the project's mapping at every depth, a
`null` removes that key, anything else (a number, a string, a list such as the blocklist)
replaces the project's value. So `{"identity": {"circuit_breaker": {"max_merge_rate": 0.5}}}`
changes one bound and keeps every identifier rule, limit and blocklist entry — a partial block
never silently drops the rest. Refused, naming the key: a top-level var dbt_project.yml does not
declare (a typo such as `identiy`), removing a whole top-level var, and a non-mapping given where
the project holds a mapping. Keys inside a block are checked by that block's validator
(orchestration/identity/config.py), which names an unknown setting.

`overrides()` gives, for every var C360_DBT_VARS names, the whole merged value: the nightly dbt
build passes it as `--vars` (dbt itself replaces a var whole), so dbt and the Python side (config
validation, the circuit breaker) read the same values.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import yaml

from orchestration.paths import dbt_project_dir

ENV_VAR = "C360_DBT_VARS"


class DbtVarsError(ValueError):
    """C360_DBT_VARS is not a mapping, or does not fit the project's vars; the message says so."""


def raw_overrides() -> dict[str, Any]:
    """The mapping in C360_DBT_VARS as written ({} when unset or blank)."""
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


def declared_vars() -> dict[str, Any]:
    """dbt_project.yml's vars, as committed."""
    doc = yaml.safe_load((dbt_project_dir() / "dbt_project.yml").read_text())
    return doc.get("vars") or {}


def merge(base: Any, patch: Any, where: str) -> Any:
    """`patch` merged into `base` (JSON merge patch; a mapping may not become a non-mapping)."""
    if not isinstance(patch, dict):
        if isinstance(base, dict):
            raise DbtVarsError(
                f"{ENV_VAR}: {where} is a mapping in dbt_project.yml; give a mapping of the keys "
                f"to change (got {type(patch).__name__}), or null to remove a key inside it"
            )
        return copy.deepcopy(patch)
    if not isinstance(base, dict):
        return {k: merge(None, v, f"{where}.{k}") for k, v in patch.items() if v is not None}
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(base.get(key), value, f"{where}.{key}")
    return out


def merged(project: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """For every var in `patch`: the project's value with `patch` merged in (see module doc)."""
    out = {}
    for name, value in patch.items():
        if name not in project:
            raise DbtVarsError(
                f"{ENV_VAR}: {name}: not a var of dbt_project.yml "
                f"(known: {', '.join(sorted(project))})"
            )
        if value is None:
            raise DbtVarsError(f"{ENV_VAR}: {name}: a project var cannot be removed (null)")
        out[name] = merge(project[name], value, name)
    return out


def overrides() -> dict[str, Any]:
    """The vars C360_DBT_VARS changes, each whole after the deep merge (what dbt gets as --vars)."""
    patch = raw_overrides()
    return merged(declared_vars(), patch) if patch else {}


def project_vars() -> dict[str, Any]:
    """dbt_project.yml's vars with C360_DBT_VARS merged in (what dbt sees in a nightly run)."""
    return {**declared_vars(), **overrides()}
