"""The dbt manifest the code location loads (`dbt_project/target/manifest.json`), refreshed when
stale: missing, or older than a file it is parsed from (the models, the macros, the tests,
dbt_project.yml, selectors.yml). `c360 run`, `c360 segments compile` and `c360 contracts compile`
call `ensure_manifest` so a new model or segment never meets a stale manifest minutes into a run;
the Makefile's `manifest` target does the same with make's own timestamps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orchestration.paths import dbt_project_dir

PARSED_FROM = ("models", "macros", "tests", "dbt_project.yml", "selectors.yml")


class ManifestError(RuntimeError):
    """dbt parse failed; the message is dbt's own last lines."""


def manifest_path() -> Path:
    return dbt_project_dir() / "target" / "manifest.json"


def _newest_source(project: Path) -> float:
    newest = 0.0
    for name in PARSED_FROM:
        path = project / name
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        for f in files:
            newest = max(newest, f.stat().st_mtime)
    return newest


def is_stale() -> bool:
    """True when the manifest is missing or a file it is parsed from changed after it."""
    manifest = manifest_path()
    if not manifest.is_file():
        return True
    return _newest_source(dbt_project_dir()) > manifest.stat().st_mtime


def ensure_manifest() -> bool:
    """Run `dbt parse` when the manifest is stale; return whether it ran."""
    if not is_stale():
        return False
    project = dbt_project_dir()
    dbt = Path(sys.executable).with_name("dbt")
    result = subprocess.run(
        [str(dbt), "parse", "--profiles-dir", ".", "--quiet"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise ManifestError(f"dbt parse failed in {project}:\n{tail}")
    manifest_path().touch()  # a parse that rewrote nothing still counts as fresh
    return True
