"""The demo data (generator, live demo sources) lives outside the runtime package: nothing in
orchestration/ imports `demo` but the CLI commands that start it (`c360 generate`, `c360 sources`)."""

import ast
from pathlib import Path

from orchestration.paths import REPO_ROOT

ALLOWED = {Path("orchestration/cli.py")}


def _imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return []


def _imports_demo(source: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if any(m.split(".")[0] == "demo" for m in _imported_modules(node))
    ]


def test_scan_sees_a_demo_import() -> None:
    assert _imports_demo("from demo.generator import generate\nimport demo.live_crm\n") == [1, 2]


def test_runtime_package_does_not_import_demo() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in sorted((REPO_ROOT / "orchestration").rglob("*.py"))
        if path.relative_to(REPO_ROOT) not in ALLOWED
        for line in _imports_demo(path.read_text())
    ]
    assert offenders == [], offenders
