"""Connected components (int_identity__clusters, built by macros/connected_components.sql): exact
on tricky graphs, and the passes it needs — it stops when no link crosses two labels — grow with
the logarithm of the longest identifier chain, not with its length. Runs the real model with dbt
on a scratch DuckDB holding only the two tables it reads."""

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.paths import dbt_project_dir


def _components(
    tmp: Path, edges: list[tuple[str, str]], records: list[str], max_passes: int = 40
) -> tuple[dict[str, str], list[tuple[int, int]]]:
    """(node -> component key, [(pass, trees not yet whole components)]) from a dbt run of the model."""
    warehouse = tmp / "wh.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema intermediate")
        con.execute(
            "create table intermediate.int_identity__edges (record_key varchar, node_key varchar)"
        )
        con.execute("create table intermediate.int_identity__records (record_key varchar)")
        con.executemany("insert into intermediate.int_identity__edges values (?, ?)", edges)
        con.executemany(
            "insert into intermediate.int_identity__records values (?)", [(r,) for r in records]
        )
    # a subprocess, as Dagster runs dbt: dbt-duckdb keeps its database open in-process
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--quiet",
         "--project-dir", str(dbt_project_dir()), "--profiles-dir", str(dbt_project_dir()),
         "--select", "int_identity__clusters",
         "--vars", f"{{as_of: '2026-11-21', identity_cc_max_passes: {max_passes}}}",
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        capture_output=True, text=True,
        env={**os.environ, "C360_WAREHOUSE": str(warehouse), "C360_DBT_TARGET": "duckdb",
             "C360_DUCKDB_TEMP_DIR": str(tmp / "tmp")},
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(result.stdout + result.stderr)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        labels = dict(
            con.execute(
                "select node_key, component_key from intermediate.int_identity__clusters"
            ).fetchall()
        )
        passes = con.execute(
            "select pass, unsettled_trees from intermediate.int_identity__clusters__cc_passes "
            "order by pass"
        ).fetchall()
        scratch = con.execute(
            "select count(*) from information_schema.tables "
            "where table_name like 'int_identity__clusters__cc_%' and table_name <> "
            "'int_identity__clusters__cc_passes'"
        ).fetchone()[0]
    assert scratch == 0, "the post-hook drops the scratch tables"
    return labels, passes


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


def test_components_are_exact(tmp_path):
    edges = [
        ("r|a:1", "v|e:x"),
        ("r|a:2", "v|e:x"),
        ("r|a:3", "v|p:y"),
        ("r|a:4", "v|p:y"),
        ("r|a:4", "v|e:z"),
        ("r|a:6", "r|a:3"),  # a record-to-record link (loyalty -> CRM contact)
    ]
    records = ["r|a:1", "r|a:2", "r|a:3", "r|a:4", "r|a:5", "r|a:6"]
    result, passes = _components(tmp_path, edges, records)
    assert result["r|a:1"] == result["r|a:2"] == result["v|e:x"] == "r|a:1"
    assert result["r|a:3"] == result["r|a:4"] == result["r|a:6"] == result["v|e:z"] == "r|a:3"
    assert result["r|a:5"] == "r|a:5"  # a record with no identifiers is its own customer
    assert len(result) == 9
    assert passes[-1][1] == 0


def test_passes_grow_logarithmically_with_chain_length(tmp_path):
    needed = {}
    for n in (16, 128, 1024):
        tmp = tmp_path / str(n)
        tmp.mkdir()
        edges, records = _chain(n, seed=n)
        result, passes = _components(tmp, edges, records)
        assert set(result.values()) == {min(records)}, "one component keyed by its smallest key"
        assert passes[-1][1] == 0 and all(unsettled > 0 for _, unsettled in passes[:-1])
        needed[n] = len(passes)
    for n, p in needed.items():
        assert p <= math.ceil(math.log2(2 * n)), (n, p)  # 2n graph nodes on the chain
    # a 64x longer chain: linear growth would need ~64x the passes
    assert needed[1024] - needed[16] <= 5, needed
    print("passes needed by chain length:", needed)


def test_a_runaway_loop_fails_the_build_naming_the_var(tmp_path):
    edges, records = _chain(256, seed=1)
    with pytest.raises(RuntimeError, match="identity_cc_max_passes"):
        _components(tmp_path, edges, records, max_passes=1)
