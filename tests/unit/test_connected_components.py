"""Connected components (int_identity__clusters): exact on tricky graphs, and the number of passes
it needs grows with the logarithm of the longest identifier chain, not with its length."""

import math
import random
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.paths import dbt_project_dir

MAX_PASSES = 12


@pytest.fixture(scope="module")
def compiled_sql(tmp_path_factory) -> str:
    """The model compiled by dbt itself (the SQL production runs) with MAX_PASSES passes."""
    tmp = tmp_path_factory.mktemp("cc")
    dbt = Path(sys.executable).parent / "dbt"
    subprocess.run(
        [str(dbt), "compile", "--profiles-dir", ".", "--select", "int_identity__clusters", "--quiet",
         "--vars", f"{{as_of: '2026-11-21', identity_cc_passes: {MAX_PASSES}}}",
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        cwd=dbt_project_dir(), check=True, capture_output=True,
        env={"C360_WAREHOUSE": str(tmp / "wh.duckdb"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return next((tmp / "target" / "compiled").rglob("int_identity__clusters.sql")).read_text()


def _run(sql: str, passes: int, edges: list[tuple[str, str]], records: list[str]) -> dict[str, str]:
    sql = re.sub(rf"from labels_{MAX_PASSES}\b", f"from labels_{passes}", sql)
    con = duckdb.connect()
    con.execute("attach ':memory:' as wh")
    con.execute("create schema wh.intermediate")
    con.execute(
        "create table wh.intermediate.int_identity__edges (record_key varchar, node_key varchar)"
    )
    con.execute("create table wh.intermediate.int_identity__records (record_key varchar)")
    con.executemany("insert into wh.intermediate.int_identity__edges values (?, ?)", edges)
    con.executemany(
        "insert into wh.intermediate.int_identity__records values (?)", [(r,) for r in records]
    )
    return dict(con.execute(f"select node_key, component_key from ({sql})").fetchall())


def _chain(length: int, seed: int) -> tuple[list[tuple[str, str]], list[str]]:
    """record - identifier - record - identifier ... with ids in random order (worst case for min-label)."""
    rng = random.Random(seed)
    ids = rng.sample(range(10 * length), length)
    records = [f"r|crm:contacts:{i:08d}" for i in ids]
    edges = []
    for k in range(length - 1):
        ident = f"v|email:{rng.random()}"
        edges += [(records[k], ident), (records[k + 1], ident)]
    return edges, records


def _converged(result: dict[str, str], edges) -> bool:
    return all(result[a] == result[b] for a, b in edges)


def test_components_are_exact(compiled_sql):
    edges = [
        ("r|a:1", "v|e:x"),
        ("r|a:2", "v|e:x"),
        ("r|a:3", "v|p:y"),
        ("r|a:4", "v|p:y"),
        ("r|a:4", "v|e:z"),
    ]
    records = ["r|a:1", "r|a:2", "r|a:3", "r|a:4", "r|a:5"]
    result = _run(compiled_sql, 3, edges, records)
    assert result["r|a:1"] == result["r|a:2"] == "r|a:1"
    assert result["r|a:3"] == result["r|a:4"] == "r|a:3"
    assert result["r|a:5"] == "r|a:5"  # a record with no identifiers is its own customer


def _passes_needed(sql: str, length: int) -> int:
    edges, records = _chain(length, seed=length)
    for passes in range(1, MAX_PASSES + 1):
        result = _run(sql, passes, edges, records)
        if _converged(result, edges):
            assert len(set(result.values())) == 1 and min(records) in result.values()
            return passes
    raise AssertionError(f"chain of {length} records did not converge in {MAX_PASSES} passes")


def test_passes_grow_logarithmically_with_chain_length(compiled_sql):
    # measured here: 32 records → 4 passes, 256 → 7, 2048 → 8, 4096 → 9
    needed = {n: _passes_needed(compiled_sql, n) for n in (16, 128, 1024)}
    for n, p in needed.items():
        assert p <= math.ceil(math.log2(2 * n)), (n, p)  # 2n graph nodes on the chain
    # a 64x longer chain: linear growth would need ~64x the passes
    assert needed[1024] - needed[16] <= 5, needed
