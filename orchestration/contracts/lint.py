"""Validate data contracts against the official ODCS JSON schema, vendored in ./schemas/.

Every `*.odcs.yaml` under data_contracts/ (sources, marts, activation) must validate against the
schema of the ODCS version its `apiVersion` names; a version without a vendored schema is refused.
`make lint` runs `python -m orchestration.contracts.lint`; each problem is one line naming the
file, the place in it (JSON path) and what is wrong. Exit 1 when any file is invalid.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from orchestration.paths import contracts_dir

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"


def vendored_versions() -> tuple[str, ...]:
    """apiVersions with a vendored schema, e.g. ("v3.1.0",)."""
    return tuple(
        sorted(p.name.removeprefix("odcs-").removesuffix(".schema.json")
               for p in SCHEMAS_DIR.glob("odcs-v*.schema.json"))
    )  # fmt: skip


@cache
def _validator(api_version: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS_DIR / f"odcs-{api_version}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _where(path: Iterable[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "(top level)"


def problems(path: Path) -> list[str]:
    """Why one contract file is not valid ODCS (empty when it is), one line each."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return [f"{path}: cannot read as YAML: {exc}"]
    if not isinstance(doc, dict):
        return [f"{path}: not a mapping"]
    version = doc.get("apiVersion")
    if version not in vendored_versions():
        return [
            f"{path}: apiVersion {version!r}: no vendored ODCS schema "
            f"(have {', '.join(vendored_versions())} in {SCHEMAS_DIR})"
        ]
    errors = sorted(_validator(version).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{path}: {_where(e.absolute_path)}: {e.message}" for e in errors]


def contract_files(root: Path | None = None) -> list[Path]:
    """Every ODCS file under data_contracts/ (or `root`)."""
    return sorted((root or contracts_dir()).rglob("*.odcs.yaml"))


def main(argv: list[str] | None = None) -> int:
    files = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or contract_files()
    found = [line for f in files for line in problems(f)]
    for line in found:
        print(line, file=sys.stderr)
    print(f"ODCS lint: {len(files)} contracts, {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
