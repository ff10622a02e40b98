"""Benchmark: identity connected components in DuckDB (the dbt model's own SQL) against SciPy.

Issue target: from an edge table of 5M identifiers to (identifier, component) within 3x the time
of scipy.sparse.csgraph.connected_components on the same edges, including reading them and
factorising the string ids, both timed in the same run; persistent-id assignment timed and
reported separately; peak memory <= 3 GB with DuckDB's memory_limit set.

The DuckDB side is the production model itself: `dbt run --select int_identity__clusters` on the
benchmark's DuckDB file (its pre-hook runs hook + pointer-jumping passes until converged), timed by
dbt's own execution_time for the model (dbt start-up excluded), peak memory = the dbt process's
peak RSS. int_identity__assignments is compiled by dbt and timed apart. Figures: docs/identity.md.

    .venv/bin/python bench/identity_cc.py --identifiers 5000000

Exits 1 if DuckDB and SciPy do not give the same partition (or the passes did not converge),
2 if the DuckDB side fails (e.g. out of memory under memory_limit).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import scipy
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from orchestration.paths import dbt_project_dir

AS_OF = "2026-11-21"
TARGET_RATIO = 3.0
TARGET_PEAK_GB = 3.0
# records per person: mostly 1-2, up to 6 (a CRM contact, a shop account, a loyalty card...)
RECORDS_PER_PERSON = np.array([0.40, 0.25, 0.15, 0.10, 0.06, 0.04])
DEFAULT_CHAINS = "10000,2000x5,500x20,100x200"
SOURCES = ("crm", "shop", "loyalty", "web")
KIND_EMAIL, KIND_PHONE, KIND_RECORD = 0, 1, 2


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# memory


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux: write 5 to clear_refs), so the next peak is this phase's alone."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


PEAKS: dict[str, float] = {}  # phase -> peak RSS (GB)


def peak_rss_gb(phase: str) -> float:
    """Peak RSS since the last reset_peak_rss(), in GB (10^9 bytes, as DuckDB's '3GB')."""
    PEAKS[phase] = _status_kb("VmHWM") * 1024 / 1e9
    return PEAKS[phase]


def gb(n_bytes: float | None) -> float:
    return (n_bytes or 0) / 1e9


class Sampler:
    """Samples process RSS and DuckDB's buffer memory + spill (duckdb_memory()) in a thread."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None, interval: float = 0.2):
        self.cursor = con.cursor() if con is not None else None
        self.interval = interval
        self.rss = self.duckdb_memory = self.duckdb_temp = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.rss = max(self.rss, _status_kb("VmRSS") * 1024)
        if self.cursor is not None:
            memory, temp = self.cursor.execute(
                "select sum(memory_usage_bytes), sum(temporary_storage_bytes) from duckdb_memory()"
            ).fetchall()[0]
            self.duckdb_memory = max(self.duckdb_memory, memory or 0)
            self.duckdb_temp = max(self.duckdb_temp, temp or 0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self.cursor is not None:
            self.cursor.close()

    def summary(self) -> str:
        text = f"sampled peak RSS {gb(self.rss):.2f} GB"
        if self.cursor is not None:
            text += (
                f", DuckDB buffer memory peak {gb(self.duckdb_memory):.2f} GB,"
                f" spilled to temp_directory peak {gb(self.duckdb_temp):.2f} GB"
            )
        return text


# ---------------------------------------------------------------------------------------------
# the model SQL, compiled by dbt


def compile_assignments(workdir: Path) -> str:
    """int_identity__assignments as dbt compiles it, relations rewritten to schema.table."""
    dbt = Path(sys.executable).parent / "dbt"
    out = workdir / "dbt"
    subprocess.run(
        [str(dbt), "compile", "--profiles-dir", ".", "--quiet",
         "--select", "int_identity__assignments", "--vars", f"{{as_of: '{AS_OF}'}}",
         "--target-path", str(out / "target"), "--log-path", str(out / "logs")],
        cwd=dbt_project_dir(), check=True, capture_output=True,
        env={"C360_WAREHOUSE": str(out / "compile.duckdb"),
             "C360_DUCKDB_TEMP_DIR": str(out / "tmp"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    sql = next((out / "target" / "compiled").rglob("int_identity__assignments.sql")).read_text()
    sql = re.sub(r'"[^"]+"\."(intermediate|audit)"\."(\w+)"', r"\1.\2", sql)
    if re.search(r'"\w+"\."', sql):
        raise RuntimeError("unexpected relation names left in compiled int_identity__assignments")
    for name in ("intermediate.int_identity__components", "audit.identity_registry"):
        if name not in sql:
            raise RuntimeError(f"{name} not found in the compiled assignments SQL")
    return sql


def run_dbt_clusters(db_path: Path, workdir: Path, args) -> tuple[float, float, str]:
    """(model seconds from dbt's run_results, dbt process peak RSS in GB, '' or the error)."""
    out = workdir / "dbt_run"
    env = {
        "C360_WAREHOUSE": str(db_path),
        "C360_DBT_TARGET": "duckdb",
        "C360_DUCKDB_TEMP_DIR": str(workdir / "duckdb_tmp"),
        "C360_DUCKDB_MEMORY_LIMIT": args.memory_limit,
        "C360_DUCKDB_THREADS": str(args.threads),
        "PATH": "/usr/bin:/bin",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--profiles-dir", ".",
         "--select", "int_identity__clusters", "--vars", f"{{as_of: '{AS_OF}'}}",
         "--target-path", str(out / "target"), "--log-path", str(out / "logs")],
        cwd=dbt_project_dir(), capture_output=True, text=True, env=env,
    )  # fmt: skip
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak = peak_kb * 1024 / 1e9 if peak_kb > before else float("nan")
    results = json.loads((out / "target" / "run_results.json").read_text())["results"]
    model = next(r for r in results if r["unique_id"].endswith(".int_identity__clusters"))
    error = "" if proc.returncode == 0 else (model.get("message") or proc.stdout[-400:])
    return float(model["execution_time"]), peak, error


# ---------------------------------------------------------------------------------------------
# synthetic graph


@dataclass
class Graph:
    record_num: np.ndarray  # per record: the number in its key (a permutation: random key order)
    record_src: np.ndarray  # per record: index into SOURCES
    edge_record: np.ndarray  # per edge: record index
    edge_kind: np.ndarray  # KIND_EMAIL / KIND_PHONE / KIND_RECORD
    edge_node: np.ndarray  # email / phone number, or record index for a record-to-record link
    identifiers: int  # distinct email + phone nodes
    chains: list[int]

    @property
    def records(self) -> int:
        return len(self.record_num)

    @property
    def nodes(self) -> int:
        return self.records + self.identifiers


def parse_chains(text: str) -> list[int]:
    chains: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        length, _, count = part.partition("x")
        chains += [int(length)] * int(count or 1)
    return chains


def _people(people: int, rng: np.random.Generator):
    """Records of `people` persons linked to their emails and phones (numbered 2p, 2p+1)."""
    n_rec = rng.choice(np.arange(1, 7), size=people, p=RECORDS_PER_PERSON)
    person = np.repeat(np.arange(people), n_rec)
    first = np.cumsum(n_rec) - n_rec
    position = np.arange(len(person)) - first[person]
    ids = 2 * np.arange(people, dtype=np.int64)
    email0, email1, phone0, phone1 = ids, ids + 1, ids.copy(), ids + 1
    has_email1 = rng.random(people) < 0.30
    has_phone0 = rng.random(people) < 0.70
    has_phone1 = has_phone0 & (rng.random(people) < 0.20)
    # households / shared numbers: 2% of persons use another person's phone, 0.5% their email
    shares_phone = rng.random(people) < 0.02
    phone0[shares_phone] = 2 * rng.integers(0, people, shares_phone.sum())
    has_phone0 |= shares_phone
    shares_email = rng.random(people) < 0.005
    email0[shares_email] = 2 * rng.integers(0, people, shares_email.sum())

    n = len(person)
    links = {
        (KIND_EMAIL, 0): rng.random(n) < 0.75,
        (KIND_EMAIL, 1): has_email1[person] & (rng.random(n) < 0.35),
        (KIND_PHONE, 0): has_phone0[person] & (rng.random(n) < 0.55),
        (KIND_PHONE, 1): has_phone1[person] & (rng.random(n) < 0.30),
    }
    unlinked = ~np.logical_or.reduce(list(links.values()))
    # most records of a multi-record person carry at least the main email; the rest stay alone
    links[KIND_EMAIL, 0] |= unlinked & (n_rec[person] > 1) & (rng.random(n) < 0.85)
    values = {
        (KIND_EMAIL, 0): email0,
        (KIND_EMAIL, 1): email1,
        (KIND_PHONE, 0): phone0,
        (KIND_PHONE, 1): phone1,
    }
    records, kinds, nodes = [], [], []
    for (kind, slot), linked in links.items():
        rec = np.flatnonzero(linked)
        records.append(rec)
        kinds.append(np.full(len(rec), kind, dtype=np.int8))
        nodes.append(values[kind, slot][person[rec]])
    # record-to-record links (a loyalty card naming its CRM contact, a web id its shop account)
    rec = np.flatnonzero((position > 0) & (rng.random(n) < 0.10))
    records.append(rec)
    kinds.append(np.full(len(rec), KIND_RECORD, dtype=np.int8))
    nodes.append(first[person[rec]])
    return n, np.concatenate(records), np.concatenate(kinds), np.concatenate(nodes), 2 * people


def generate(target_nodes: int, chains: list[int], seed: int) -> Graph:
    """Persons (1-6 records each, linked through emails and phones, a few shared numbers) plus
    long chains record - identifier - record - ..., about target_nodes nodes in all."""
    chain_nodes = sum(2 * length - 1 for length in chains)
    if chain_nodes >= target_nodes:
        raise SystemExit(f"chains ({chain_nodes} nodes) do not fit in {target_nodes} nodes")
    people = max(1, int((target_nodes - chain_nodes) / 4.0))
    for _ in range(2):  # second round corrects the nodes-per-person estimate
        rng = np.random.default_rng(seed)
        n_records, e_rec, e_kind, e_node, n_values = _people(people, rng)
        distinct = sum(len(np.unique(e_node[e_kind == kind])) for kind in (KIND_EMAIL, KIND_PHONE))
        nodes = n_records + distinct
        people = max(1, round(people * (target_nodes - chain_nodes) / nodes))

    # chains: record k and record k+1 share identifier k (alternately an email and a phone)
    chain_recs, chain_kinds, chain_vals = [], [], []
    rec0, val0 = n_records, n_values
    for length in chains:
        recs = rec0 + np.arange(length, dtype=np.int64)
        vals = val0 + np.arange(length - 1, dtype=np.int64)
        kinds = (np.arange(length - 1) % 2).astype(np.int8)
        chain_recs += [recs[:-1], recs[1:]]
        chain_kinds += [kinds, kinds]
        chain_vals += [vals, vals]
        rec0 += length
        val0 += length - 1
    total_records = rec0
    identifiers = distinct + (val0 - n_values)

    edge_record = np.concatenate([e_rec, *chain_recs])
    edge_kind = np.concatenate([e_kind, *chain_kinds])
    edge_node = np.concatenate([e_node, *chain_vals])
    order = rng.permutation(len(edge_record))  # edges in no particular order
    return Graph(
        record_num=rng.permutation(total_records).astype(np.int64),
        record_src=rng.choice(len(SOURCES), size=total_records, p=[0.35, 0.30, 0.20, 0.15]).astype(
            np.int8
        ),
        edge_record=edge_record[order],
        edge_kind=edge_kind[order],
        edge_node=edge_node[order],
        identifiers=int(identifiers),
        chains=chains,
    )


RECORD_KEY = """
create or replace temp macro record_key(src, num) as case src
    when 0 then 'r|crm:contacts:C' || lpad(num::varchar, 9, '0')
    when 1 then 'r|shop:customers:' || (4000000000 + num)::varchar
    when 2 then 'r|loyalty:members:LY' || lpad(num::varchar, 9, '0')
    else 'r|web:anonymous_ids:' || substr(md5(num::varchar), 1, 24)
end
"""
IDENTIFIER_KEY = """
create or replace temp macro identifier_key(kind, num) as case kind
    when 0 then 'v|email:user.' || num::varchar || '@'
        || (['gmail.com', 'yahoo.com', 'outlook.com', 'icloud.com', 'gmx.de'])[num % 5 + 1]
    else 'v|phone:+1' || (2012000000 + num)::varchar
end
"""


def write_graph(con: duckdb.DuckDBPyConnection, graph: Graph) -> None:
    """int_identity__records (record_key) and int_identity__edges (record_key, node_key)."""
    con.execute(RECORD_KEY)
    con.execute(IDENTIFIER_KEY)
    con.execute("create schema if not exists intermediate")
    records = pa.table({"num": graph.record_num, "src": graph.record_src})
    is_record_link = graph.edge_kind == KIND_RECORD
    target = np.where(is_record_link, graph.edge_node, 0)
    edges = pa.table(
        {
            "rec_num": graph.record_num[graph.edge_record],
            "rec_src": graph.record_src[graph.edge_record],
            "kind": graph.edge_kind,
            "node": graph.edge_node,
            "node_num": graph.record_num[target],
            "node_src": graph.record_src[target],
        }
    )
    con.register("gen_records", records)
    con.register("gen_edges", edges)
    con.execute(
        "create or replace table intermediate.int_identity__records as"
        " select record_key(src, num) as record_key from gen_records"
    )
    con.execute(
        """
        create or replace table intermediate.int_identity__edges as
        select
            record_key(rec_src, rec_num) as record_key,
            case when kind = 2 then record_key(node_src, node_num)
                else identifier_key(kind, node) end as node_key
        from gen_edges
        """
    )
    con.unregister("gen_records")
    con.unregister("gen_edges")
    con.execute("checkpoint")


# ---------------------------------------------------------------------------------------------
# the two sides


def open_db(path: Path, args, temp_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(f"set memory_limit = '{args.memory_limit}'")
    con.execute(f"set threads = {args.threads}")
    con.execute(f"set temp_directory = '{temp_dir}'")
    con.execute("set TimeZone = 'UTC'")
    return con


def crossing_links(con: duckdb.DuckDBPyConnection) -> int:
    """The test assert_identity_components_converged: links whose ends got different components."""
    return con.execute(
        """
        select count(*)
        from intermediate.int_identity__edges as edges
        inner join intermediate.int_identity__clusters as l on edges.record_key = l.node_key
        inner join intermediate.int_identity__clusters as r on edges.node_key = r.node_key
        where l.component_key <> r.component_key
        """
    ).fetchall()[0][0]


def factorize(keys: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Integer code per key, codes 0..n-1 into the distinct keys (Arrow's hash table, unified
    across chunks; faster than pandas.factorize on object strings)."""
    encoded = keys.dictionary_encode()
    dictionary = encoded.chunks[-1].dictionary if encoded.num_chunks else pa.array([], pa.string())
    for chunk in encoded.chunks:
        assert len(chunk.dictionary) <= len(dictionary)
    codes = np.concatenate(
        [c.indices.to_numpy(zero_copy_only=False) for c in encoded.chunks] or [np.empty(0, int)]
    )
    return codes, dictionary


def run_scipy(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, float], pa.Array, np.ndarray]:
    times = {}
    start = time.perf_counter()
    edges = con.sql(
        "select record_key, node_key from intermediate.int_identity__edges"
    ).to_arrow_table()
    records = con.sql("select record_key from intermediate.int_identity__records").to_arrow_table()
    times["read"] = time.perf_counter() - start

    mark = time.perf_counter()
    keys = pa.chunked_array(
        records["record_key"].chunks + edges["record_key"].chunks + edges["node_key"].chunks
    )
    codes, uniques = factorize(keys)
    times["factorise"] = time.perf_counter() - mark

    mark = time.perf_counter()
    n_records, m, n = records.num_rows, edges.num_rows, len(uniques)
    src, dst = codes[n_records : n_records + m], codes[n_records + m :]
    graph = coo_matrix((np.ones(m, dtype=np.int8), (src, dst)), shape=(n, n)).tocsr()
    times["csr"] = time.perf_counter() - mark

    mark = time.perf_counter()
    _, labels = connected_components(graph, directed=False)
    times["connected_components"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    return times, uniques, labels


def compare(con: duckdb.DuckDBPyConnection, uniques: pa.Array, labels: np.ndarray) -> dict:
    """Same partition: every node on both sides, and (duckdb component, scipy label) pairs a
    bijection; plus each component key is the smallest key of its SciPy component."""
    con.register("scipy_cc", pa.table({"node": uniques, "label": labels}))
    row = con.execute(
        """
        with joined as (
            select d.node_key, d.component_key, s.label
            from intermediate.int_identity__clusters as d
            full join scipy_cc as s on d.node_key = s.node
        ),

        smallest as (
            select label, min(node) as smallest_key from scipy_cc group by label
        )

        select
            (select count(*) from intermediate.int_identity__clusters) as duckdb_nodes,
            (select count(*) from scipy_cc) as scipy_nodes,
            count(*) filter (where node_key is null or label is null) as unmatched_nodes,
            count(distinct component_key) as duckdb_components,
            count(distinct label) as scipy_components,
            count(distinct (component_key, label)) as pairs,
            (
                select count(*) from (select distinct component_key, label from joined) as p
                inner join smallest using (label)
                where p.component_key <> smallest.smallest_key
            ) as keys_not_smallest
        from joined
        """
    ).fetchall()[0]
    con.unregister("scipy_cc")
    names = [
        "duckdb_nodes",
        "scipy_nodes",
        "unmatched_nodes",
        "duckdb_components",
        "scipy_components",
        "pairs",
        "keys_not_smallest",
    ]
    result = dict(zip(names, row, strict=True))
    result["same"] = (
        result["duckdb_nodes"] == result["scipy_nodes"]
        and result["unmatched_nodes"] == 0
        and result["duckdb_components"] == result["scipy_components"] == result["pairs"]
        and result["keys_not_smallest"] == 0
    )
    return result


def clusters_from_scipy(con: duckdb.DuckDBPyConnection, uniques: pa.Array, labels) -> None:
    """int_identity__clusters from SciPy's labels (component key: smallest node key)."""
    con.register("scipy_cc", pa.table({"node": uniques, "label": labels}))
    con.execute(
        """
        create or replace table intermediate.int_identity__clusters as
        select
            node as node_key,
            min(node) over (partition by label) as component_key,
            node like 'r|%' as is_record
        from scipy_cc
        """
    )
    con.unregister("scipy_cc")


def component_sizes(labels: np.ndarray) -> str:
    sizes = np.bincount(labels)
    pct = np.percentile(sizes, [50, 90, 99, 99.9])
    return (
        f"{len(sizes):,} components; nodes per component p50 {pct[0]:.0f}, p90 {pct[1]:.0f},"
        f" p99 {pct[2]:.0f}, p99.9 {pct[3]:.0f}, max {sizes.max():,}"
    )


# ---------------------------------------------------------------------------------------------
# persistent ids


REGISTRY_DDL = """
create schema if not exists audit;
create or replace table audit.identity_registry (
    record_key varchar not null,
    customer_id varchar not null,
    first_assigned_as_of date not null,
    last_seen_as_of date not null,
    record_first_seen_as_of date
);
"""

# what the post-hook persist_identity_assignments does to the registry (merge log not included)
PERSIST = """
delete from audit.identity_registry
where record_key in (select record_key from intermediate.int_identity__assignments);
insert into audit.identity_registry (
    record_key, customer_id, first_assigned_as_of, last_seen_as_of, record_first_seen_as_of
)
select record_key, customer_id, first_assigned_as_of, as_of, record_first_seen_as_of
from intermediate.int_identity__assignments;
"""


def run_assignments(con, sql: str, table: str) -> tuple[float, Sampler]:
    con.execute(f"drop table if exists {table}")
    with Sampler(con) as sampler:
        start = time.perf_counter()
        con.execute(f"create table {table} as\n{sql}")
        elapsed = time.perf_counter() - start
    return elapsed, sampler


def timed(con, sql: str) -> float:
    start = time.perf_counter()
    con.execute(sql)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--identifiers",
        type=int,
        default=5_000_000,
        help="distinct graph nodes (records + emails + phones), about",
    )
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB memory_limit")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--chains", default=DEFAULT_CHAINS, help="long chains, records per chain: 'LEN[xCOUNT],...'"
    )
    parser.add_argument("--skip-assignments", action="store_true")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the DuckDB file and temp_directory go (default: a temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="c360_bench_cc_"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_path, temp_dir = workdir / "bench.duckdb", workdir / "duckdb_tmp"
    try:
        return _bench(args, workdir, db_path, temp_dir)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _bench(args, workdir: Path, db_path: Path, temp_dir: Path) -> int:
    log(
        f"identity CC benchmark: ~{args.identifiers:,} nodes, memory_limit {args.memory_limit},"
        f" threads {args.threads}, seed {args.seed}; duckdb {duckdb.__version__},"
        f" scipy {scipy.__version__}, numpy {np.__version__}, pyarrow {pa.__version__};"
        f" {os.cpu_count()} cpus; work dir {workdir}"
    )
    log("compiling int_identity__assignments with dbt ...")
    assignments_sql = compile_assignments(workdir)

    log("generating the graph with NumPy ...")
    if not reset_peak_rss():
        log("warning: cannot reset the peak RSS (/proc/self/clear_refs): phase peaks accumulate")
    start = time.perf_counter()
    graph = generate(args.identifiers, parse_chains(args.chains), args.seed)
    con = duckdb.connect(str(db_path))
    write_graph(con, graph)
    n_edges = con.execute("select count(*) from intermediate.int_identity__edges").fetchall()[0][0]
    record_links = con.execute(
        "select count(*) from intermediate.int_identity__edges where node_key like 'r|%'"
    ).fetchall()[0][0]
    con.close()
    longest = max(graph.chains, default=0)
    log(
        f"generated in {time.perf_counter() - start:.1f}s: {graph.nodes:,} nodes"
        f" ({graph.records:,} records, {graph.identifiers:,} emails/phones), {n_edges:,} links"
        f" ({record_links:,} record-to-record); {len(graph.chains)} long chains, longest"
        f" {longest:,} records; DuckDB file {db_path.stat().st_size / 2**20:,.0f} MB"
    )
    peak_rss_gb("generation")
    del graph
    gc.collect()

    # (a) DuckDB: the production model, run by dbt on the benchmark's file
    log("DuckDB: dbt run --select int_identity__clusters ...")
    duck_time, duck_peak, duck_error = run_dbt_clusters(db_path, workdir, args)
    PEAKS["duckdb_cc"] = duck_peak
    passes = 0
    if duck_error:
        log(f"DuckDB: FAILED after {duck_time:.1f}s: {duck_error}; peak RSS {duck_peak:.2f} GB")
    else:
        con = open_db(db_path, args, temp_dir)
        crossing = crossing_links(con)
        profile = con.execute(
            "select pass, active_nodes, unsettled_trees from intermediate.int_identity__clusters__cc_passes"
            " order by pass"
        ).fetchall()
        passes = len(profile)
        con.close()
        log(
            f"DuckDB: {duck_time:.1f}s, {passes} passes (nodes worked on / trees unsettled after each: "
            + ", ".join(f"{a:,}/{u:,}" for _, a, u in profile)
            + f"); links crossing components now: {crossing:,}; dbt process peak RSS"
            f" {duck_peak:.2f} GB"
        )
    gc.collect()

    # (b) SciPy: read the same edges, factorise, csr, connected_components
    con = open_db(db_path, args, temp_dir)
    reset_peak_rss()
    log("SciPy: read edges from DuckDB to Arrow, factorise ids, csr, connected_components ...")
    scipy_times, uniques, labels = run_scipy(con)
    scipy_peak = peak_rss_gb("scipy")
    log(
        "SciPy: "
        + ", ".join(f"{k} {v:.2f}s" for k, v in scipy_times.items())
        + f"; peak RSS {scipy_peak:.2f} GB"
    )
    log(f"SciPy: {component_sizes(labels)}")
    n_nodes = len(uniques)

    if duck_error:
        same = False
        log("partition check: skipped (DuckDB failed); SciPy's components stand in as")
        log("int_identity__clusters (key = smallest node key) so the assignment step can be timed")
        clusters_from_scipy(con, uniques, labels)
    else:
        check = compare(con, uniques, labels)
        same = check["same"]
        log(
            f"partition check: duckdb {check['duckdb_nodes']:,} nodes /"
            f" {check['duckdb_components']:,} components, scipy {check['scipy_nodes']:,} nodes /"
            f" {check['scipy_components']:,} components, {check['unmatched_nodes']:,} unmatched"
            f" nodes, {check['pairs']:,} (duckdb, scipy) component pairs,"
            f" {check['keys_not_smallest']:,} component keys not the smallest key"
            f" -> {'SAME partition' if same else 'PARTITIONS DIFFER'}"
        )
    del uniques, labels
    con.close()
    gc.collect()

    # (c) persistent ids, timed apart
    assignment_lines = []
    if not args.skip_assignments:
        con = open_db(db_path, args, temp_dir)
        # no max_per_customer limits in the synthetic graph: the final components are the clusters
        con.execute(
            "create or replace view intermediate.int_identity__components as"
            " select * from intermediate.int_identity__clusters"
        )
        con.execute(REGISTRY_DDL)
        reset_peak_rss()
        table = "intermediate.int_identity__assignments"
        first, sampler1 = run_assignments(con, assignments_sql, table)
        persist = timed(con, PERSIST)
        customers = con.execute(f"select count(distinct customer_id) from {table}").fetchall()[0][0]
        log(
            f"assignments, empty registry: {first:.1f}s ({customers:,} customer ids);"
            f" registry write {persist:.1f}s; {sampler1.summary()}"
        )
        con.execute(f"create or replace table intermediate.first_run as select * from {table}")
        second, sampler2 = run_assignments(con, assignments_sql, table)
        changed = con.execute(
            f"""
            select count(*) from {table} as a
            inner join intermediate.first_run as b using (record_key)
            where a.customer_id <> b.customer_id
            """
        ).fetchall()[0][0]
        registry_rows = con.execute("select count(*) from audit.identity_registry").fetchall()[0][0]
        assign_peak = peak_rss_gb("assignments")
        log(
            f"assignments, full registry ({registry_rows:,} rows): {second:.1f}s;"
            f" {changed:,} records changed customer id (expected 0); {sampler2.summary()};"
            f" peak RSS (both runs) {assign_peak:.2f} GB"
        )
        con.close()
        on = " (on SciPy's components)" if duck_error else ""
        assignment_lines = [
            f"assignment, empty registry{on}: {first:.1f}s (+ registry write {persist:.1f}s)",
            f"assignment, full registry{on}: {second:.1f}s ({changed} ids changed)",
        ]
        if changed:
            same = False

    # VmHWM is reset per phase (and ru_maxrss with it): the whole run's peak is the largest
    overall_peak = max(PEAKS.values())
    settings = f"memory_limit {args.memory_limit}, threads {args.threads}"
    print()
    print(f"=== identity CC benchmark: {n_nodes:,} nodes, {n_edges:,} links ===")
    outcome = f"FAILED after {duck_time:.1f}s ({duck_error})" if duck_error else f"{duck_time:.1f}s"
    print(
        f"duckdb CC (dbt model), {passes} passes ({settings}): {outcome}; peak RSS {duck_peak:.2f} GB"
    )
    print(
        f"scipy read+factorise+csr+cc: {scipy_times['total']:.1f}s"
        f" (read {scipy_times['read']:.1f}s, factorise {scipy_times['factorise']:.1f}s,"
        f" csr {scipy_times['csr']:.1f}s, cc {scipy_times['connected_components']:.1f}s);"
        f" peak RSS {scipy_peak:.2f} GB"
    )
    for line in assignment_lines:
        print(line)
    ratio = duck_time / scipy_times["total"]
    if duck_error:
        print(f"ratio duckdb/scipy = n/a: DuckDB failed after {ratio:.1f}x SciPy's whole time")
    else:
        verdict = "OK" if ratio <= TARGET_RATIO else "MISSED"
        print(f"ratio duckdb/scipy = {ratio:.1f}x (target <= {TARGET_RATIO:g}x: {verdict})")
    print(
        f"peak RSS: duckdb CC phase {duck_peak:.2f} GB (target <= {TARGET_PEAK_GB:g} GB:"
        f" {'OK' if duck_peak <= TARGET_PEAK_GB else 'MISSED'}), whole process"
        f" {overall_peak:.2f} GB (largest phase: {max(PEAKS, key=PEAKS.get)}); GB = 10^9 bytes"
    )
    if duck_error:
        print("partitions: not compared (DuckDB failed)")
        return 2
    print(f"partitions: {'same' if same else 'DIFFER'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
