"""Benchmark: the erasure step (`orchestration.privacy.erasure.erase_pending`) on a generated home.

Preparing a home (`--prepare DIR`, once): `c360 generate` into DIR (orchestration.paths.home_env,
never the developer's C360_HOME), the erasure requests' landing files moved to DIR/requests, then
one `c360 run` (its erasure step finds no request). Each measurement then works on a scratch copy
of the warehouse, landing folder and outbox: the request files go back into the landing folder,
their rows into `raw.consent__erasure_requests` (as ingestion would load them), and
`erase_pending` is timed alone. Prints requests, rows and files touched, tombstones and seconds.

    .venv/bin/python bench/erasure.py --prepare /tmp/erb --customers 50000 --seed 11
    .venv/bin/python bench/erasure.py --home /tmp/erb            # every planted request
    .venv/bin/python bench/erasure.py --home /tmp/erb --limit 10 --impl old_erasure.py

`--receipts FILE` writes the receipts and table sizes, to compare two implementations;
`--impl FILE` times another implementation of the module (e.g. a previous commit's
erasure.py, from `git show`). Figures: docs/benchmarks.md ("Erasure step").
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestration.paths import home_env  # noqa: E402

REQUESTS = Path("consent/erasure_requests")


def prepare(home: Path, customers: int, seed: int, as_of: str) -> None:
    """Generate, set the erasure requests aside, run one night."""
    env = {**os.environ, **home_env(home)}
    bin_ = REPO / ".venv/bin"
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    subprocess.run([bin_ / "c360", "generate", "--customers", str(customers), "--seed",
                    str(seed), "--as-of", as_of], env=env, check=True)  # fmt: skip
    shutil.move(home / "landing" / REQUESTS, home / "requests")
    subprocess.run([bin_ / "python", "-c", "from orchestration.instance import ensure_instance; "
                    "ensure_instance()"], env=env, check=True, cwd=REPO)  # fmt: skip
    subprocess.run([bin_ / "c360", "run", "--as-of", as_of], env=env, check=True, cwd=REPO)


def _module(impl: str | None):
    if not impl:
        from orchestration.privacy import erasure

        return erasure
    spec = importlib.util.spec_from_file_location("_bench_erasure_impl", impl)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def measure(
    home: Path, as_of: dt.date, limit: int | None, impl: str | None, receipts: Path | None
) -> None:

    with tempfile.TemporaryDirectory(prefix="c360-bench-erasure-") as tmp:
        scratch = Path(tmp)
        shutil.copy(home / "warehouse.duckdb", scratch / "warehouse.duckdb")
        shutil.copytree(home / "landing", scratch / "landing")
        shutil.copytree(home / "outbox", scratch / "outbox", dirs_exist_ok=True)
        shutil.copytree(home / "requests", scratch / "landing" / REQUESTS, dirs_exist_ok=True)
        os.environ.update(home_env(scratch))
        erasure = _module(impl)
        # the nightly's connection: its memory limit and temp folder (orchestration.warehouse)
        from orchestration.warehouse import connect

        con = connect(scratch / "warehouse.duckdb")
        files = sorted(str(p) for p in (scratch / "landing" / REQUESTS).rglob("*.parquet"))
        con.execute(
            "insert into raw.consent__erasure_requests by name select erasure_request_id, "
            "contact_point, contact_point_type, requested_at::timestamp as requested_at, "
            "'bench' as _batch_id, now()::timestamp as _loaded_at, filename as _source_file "
            "from read_parquet(?, filename = true) order by erasure_request_id "
            f"{'limit ' + str(limit) if limit else ''}",
            [files],
        ).fetchall()
        start = time.perf_counter()
        s = erasure.erase_pending(con, as_of, run_id="bench", landing=scratch / "landing",
                                  outbox=scratch / "outbox")  # fmt: skip
        seconds = time.perf_counter() - start
        if receipts:
            rows = con.execute(
                "select request_id, identifier_kinds, identifier_hashes, places, rows_touched, "
                f"files_touched, status from {erasure.RECEIPTS} order by request_id"
            ).fetchall()
            names = con.execute(
                "select schema_name, table_name from duckdb_tables() "
                "where not temporary and database_name = current_database() order by all"
            ).fetchall()
            counts = {
                f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchall()[0][0]
                for s, t in names
            }
            receipts.write_text(json.dumps({"receipts": rows, "tables": counts}, default=str))
        con.close()
    print(f"requests={s.requests} rows={s.rows} files={s.files} tombstones={s.tombstones} "
          f"destinations_pending={s.destinations_pending} seconds={seconds:.1f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepare", type=Path, help="build a home in this folder, then exit")
    p.add_argument("--home", type=Path, help="a home built by --prepare")
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--as-of", default="2026-11-21")
    p.add_argument("--limit", type=int, help="only the first N requests (by id)")
    p.add_argument("--impl", help="time this erasure.py instead of the repository's")
    p.add_argument("--receipts", type=Path, help="write the receipts and table sizes (JSON)")
    a = p.parse_args()
    if a.prepare:
        prepare(a.prepare, a.customers, a.seed, a.as_of)
    elif a.home:
        measure(a.home, dt.date.fromisoformat(a.as_of), a.limit, a.impl, a.receipts)
    else:
        p.error("--prepare DIR or --home DIR")


if __name__ == "__main__":
    main()
