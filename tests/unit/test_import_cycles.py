"""The project's modules import each other without a circle (issue 18: "imports keep 0 cycles").

Every import counts, wherever it stands: at module level, inside a function (a lazy import that
only hides a circle) and under `if TYPE_CHECKING:`. A circle means two modules that cannot be
understood, tested or moved apart; the mend is a lower module both import (as
`activation/sync_definition.py`, `activation/destinations/rows.py`, `demo/text_files.py` and
`ingest/file_hash.py` are).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestration", "demo", "bench")


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every Python file of the packages."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `module` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod where there is one
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        found.update(n for n in names if n in known and n != module)
    return found


def _circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of the graph (its modules in order, the first repeated last), or []."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_the_finder_sees_a_circle() -> None:
    assert set(_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == {"a", "b", "c"}
    assert _circle({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    known = _modules()
    graph = {m: _imports(m, p, known) for m, p in known.items()}
    assert sum(map(len, graph.values())) > 100  # the graph was read
    assert graph["orchestration.activation.syncs"] >= {
        "orchestration.activation.sync_definition",
        "orchestration.activation.destinations.registry",
    }
    circle = _circle(graph)
    assert not circle, "import circle: " + " -> ".join(circle)
