"""Connected components (int_identity__clusters, built by macros/connected_components.sql): exact
on tricky graphs, and the passes it needs — it stops when no link crosses two labels — grow with
the logarithm of the longest identifier chain, not with its length. Runs the real model with dbt
on a scratch DuckDB holding only the two tables it reads."""

import math
import random
from pathlib import Path

import duckdb
import pytest

from orchestration.dbt_invocations import CODE_DIGEST_ENV
from tests import scratch_dbt


def _components(
    tmp: Path,
    edges: list[tuple[str, str]],
    records: list[str],
    max_passes: int | None = None,
    code_digest: str | None = None,
) -> tuple[dict[str, str], list[tuple[int, int, int]]]:
    """(node -> component key, [(pass, nodes it worked on, trees not yet whole components)]) from
    a dbt run of the model on tmp's warehouse, its two input tables replaced first.
    `code_digest`: run as the nightly does (C360_DBT_CODE_DIGEST), so the model may start from
    its last build's components (macros/incremental_components.sql)."""
    warehouse = tmp / "wh.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists intermediate")
        con.execute(
            "create or replace table intermediate.int_identity__edges "
            "(record_key varchar, node_key varchar)"
        )
        con.execute(
            "create or replace table intermediate.int_identity__records (record_key varchar)"
        )
        con.executemany("insert into intermediate.int_identity__edges values (?, ?)", edges)
        con.executemany(
            "insert into intermediate.int_identity__records values (?)", [(r,) for r in records]
        )
    # --vars only when a test caps the passes: a new --vars value re-parses the project
    result = scratch_dbt.run(
        warehouse,
        ["run", "--quiet", "--select", "int_identity__clusters"],
        as_of="2026-11-21",
        log_path=tmp / "logs",
        variables=None if max_passes is None else {"identity_cc_max_passes": max_passes},
        env={CODE_DIGEST_ENV: code_digest} if code_digest else None,
    )
    if result.returncode:
        raise RuntimeError(result.stdout + result.stderr)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        labels = dict(
            con.execute(
                "select node_key, component_key from intermediate.int_identity__clusters"
            ).fetchall()
        )
        passes = con.execute(
            "select pass, active_nodes, unsettled_trees "
            "from intermediate.int_identity__clusters__cc_passes order by pass"
        ).fetchall()
        scratch = con.execute(
            "select count(*) from information_schema.tables "
            "where table_name like 'int_identity__clusters__%' and table_name not in "
            "('int_identity__clusters__cc_passes', 'int_identity__clusters__graph')"
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
    assert passes[-1][2] == 0


def test_passes_grow_logarithmically_with_chain_length(tmp_path):
    needed = {}
    for n in (16, 128, 1024):
        tmp = tmp_path / str(n)
        tmp.mkdir()
        edges, records = _chain(n, seed=n)
        result, passes = _components(tmp, edges, records)
        assert set(result.values()) == {min(records)}, "one component keyed by its smallest key"
        assert passes[-1][2] == 0 and all(unsettled > 0 for _, _, unsettled in passes[:-1])
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


def _random_graph(rng: random.Random, records: int, links: int) -> tuple[list, list[str]]:
    keys = [f"r|crm:contacts:{i:06d}" for i in rng.sample(range(10 * records), records)]
    values = [f"v|email:{i}" for i in range(links // 2)]
    edges = [(rng.choice(keys), rng.choice(values)) for _ in range(links)]
    edges += [(rng.choice(keys), rng.choice(keys)) for _ in range(links // 10)]
    return sorted(set(edges)), keys


def test_a_night_that_only_adds_starts_from_the_last_components(tmp_path):
    """New links and records (one joining two old components, one a new component): the
    components equal a full run's, and the passes worked only on the new part."""
    rng = random.Random(7)
    edges, records = _random_graph(rng, 400, 500)
    first, passes = _components(tmp_path, edges, records, code_digest="d1")
    nodes = len(first)
    assert passes[0][1] == nodes  # the first build is a full run
    old_keys = sorted(set(first.values()))
    new_records = ["r|shop:customers:new1", "r|shop:customers:new2"]
    added = [
        (old_keys[0], "v|email:bridge"), (old_keys[-1], "v|email:bridge"),  # merges two
        (new_records[0], "v|email:fresh"), (new_records[1], "v|email:fresh"),
        ("r|crm:contacts:000000x", old_keys[1]),  # a new record joining an old component
    ]  # fmt: skip
    more_edges = [*edges, *added]
    more_records = [*records, *new_records, "r|crm:contacts:000000x"]
    again, passes = _components(tmp_path, more_edges, more_records, code_digest="d1")
    full_tmp = tmp_path / "full"
    full_tmp.mkdir()
    full, _ = _components(full_tmp, more_edges, more_records)
    assert again == full
    assert full[new_records[0]] == full[new_records[1]] != full[old_keys[1]]
    assert full[old_keys[0]] == full[old_keys[-1]] == min(old_keys[0], old_keys[-1])
    assert full["r|crm:contacts:000000x"] == full[old_keys[1]]
    assert passes[0][1] < 20, passes  # the new part only, not the graph's ~900 nodes


def test_a_removed_link_reopens_only_its_component(tmp_path):
    """A link gone splits its component (an email changed): that component's nodes are worked
    on again, every other stays as it was; the components equal a full run's."""
    rng = random.Random(5)
    edges, records = _random_graph(rng, 400, 500)
    split = [
        ("r|crm:contacts:split_a", "v|email:split"),
        ("r|crm:contacts:split_b", "v|email:split"),
    ]
    records = [*records, "r|crm:contacts:split_a", "r|crm:contacts:split_b"]
    first, _ = _components(tmp_path, [*edges, *split], records, code_digest="d1")
    assert first["r|crm:contacts:split_a"] == first["r|crm:contacts:split_b"]
    edges = [*edges, split[0], ("r|crm:contacts:split_b", "v|email:moved")]
    again, passes = _components(tmp_path, edges, records, code_digest="d1")
    full_tmp = tmp_path / "full"
    full_tmp.mkdir()
    full, _ = _components(full_tmp, edges, records)
    assert again == full
    assert full["r|crm:contacts:split_a"] != full["r|crm:contacts:split_b"]
    assert "v|email:moved" in full
    assert passes[0][1] < 10, passes  # the split component and the new node only


@pytest.mark.parametrize("change", ["table_changed", "code_changed"])
def test_a_changed_table_or_code_runs_in_full(tmp_path, change):
    """The last table changed since its build (an erasure, a hand edit) or other code: a full
    run, and the components are a full run's."""
    rng = random.Random(11)
    edges, records = _random_graph(rng, 300, 400)
    _components(tmp_path, edges, records, code_digest="d1")
    digest = "d1"
    if change == "table_changed":
        with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
            con.execute(
                "delete from intermediate.int_identity__clusters where node_key = "
                "(select min(node_key) from intermediate.int_identity__clusters)"
            )
    else:
        digest = "d2"
    edges = [*edges, (records[0], "v|email:new")]
    again, passes = _components(tmp_path, edges, records, code_digest=digest)
    full_tmp = tmp_path / "full"
    full_tmp.mkdir()
    full, _ = _components(full_tmp, edges, records)
    assert again == full
    assert passes[0][1] == len(full)  # every node: a full run
