"""Every DuckDB the pipeline opens obeys C360_DUCKDB_MEMORY_LIMIT and C360_DUCKDB_TEMP_DIR.

Grain: one assertion per connect site (the scan) and one per helper (the settings it reports).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pyarrow as pa
import pytest

from orchestration import warehouse
from orchestration.identity import probabilistic

ORCHESTRATION = Path(warehouse.__file__).resolve().parent


def _bare_connects(source: str) -> list[int]:
    """Lines calling duckdb.connect(...) or a `connect` imported from duckdb."""
    tree = ast.parse(source)
    from_duckdb = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "duckdb"
        for alias in node.names
        if alias.name == "connect"
    }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "connect"
            and isinstance(func.value, ast.Name)
            and func.value.id == "duckdb"
        ) or (isinstance(func, ast.Name) and func.id in from_duckdb):
            lines.append(node.lineno)
    return lines


def test_scan_detects_a_bare_connect() -> None:
    assert _bare_connects("import duckdb\ncon = duckdb.connect()\n") == [2]
    assert _bare_connects("from duckdb import connect as c\nc('x.db')\n") == [2]
    assert _bare_connects("from orchestration.warehouse import scratch\nscratch()\n") == []


def test_no_bare_duckdb_connect_outside_warehouse() -> None:
    offenders = []
    demo = ORCHESTRATION.parent / "demo"  # the generator opens the warehouse the same way
    for path in sorted([*ORCHESTRATION.rglob("*.py"), *demo.rglob("*.py")]):
        if path == ORCHESTRATION / "warehouse.py":
            continue
        for line in _bare_connects(path.read_text()):
            offenders.append(f"{path.relative_to(ORCHESTRATION.parent)}:{line}")
    assert offenders == [], "open DuckDB through orchestration.warehouse.connect/scratch"


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_DUCKDB_MEMORY_LIMIT", "321MB")
    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "spill"))
    return tmp_path / "spill"


def _reported(con) -> tuple[str, str]:
    row = con.execute(
        "select current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    return row[0], row[1]


def test_scratch_reports_the_configured_limit(limited: Path) -> None:
    con = warehouse.scratch()
    try:
        limit, temp = _reported(con)
    finally:
        con.close()
    # DuckDB reports in binary units: 321MB → 306.1 MiB
    assert limit == "306.1 MiB"
    assert Path(temp).resolve() == limited.resolve()


def test_probabilistic_scratch_reports_the_configured_limit(limited: Path) -> None:
    records = pa.table(
        {
            "unique_id": ["a", "b"],
            "first_name": ["ann", "ann"],
            "last_name": ["lee", "lee"],
            "date_of_birth": ["1990-01-01", "1990-01-01"],
            "postal_code": ["1000", "1000"],
            "address_line1": ["1 main st", "1 main st"],
            "phone_stem": [None, None],
            "email_domain": [None, None],
            "email_tail": [None, None],
        }
    )
    _, con = probabilistic._linker(records, probabilistic.settings())
    try:
        limit, temp = _reported(con)
    finally:
        con.close()
    assert limit == "306.1 MiB"
    assert Path(temp).resolve() == limited.resolve()


def test_dbt_profile_defaults_to_the_pipelines_memory_limit():
    """dbt's profile and orchestration/warehouse.py fall back to one default memory limit."""
    from pathlib import Path

    from orchestration.warehouse import DEFAULT_MEMORY_LIMIT, MEMORY_ENV

    profile = (Path(__file__).resolve().parents[2] / "dbt_project" / "profiles.yml").read_text()
    assert f"env_var('{MEMORY_ENV}', '{DEFAULT_MEMORY_LIMIT}')" in profile
