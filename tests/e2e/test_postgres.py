"""Real Postgres: Dagster run storage from the committed dagster.yaml, and the whole dbt project
built with `--target postgres` on a small raw set (the SQL stays portable)."""

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import psycopg2
import pytest

from orchestration.contracts.model import all_source_contracts
from orchestration.paths import REPO_ROOT, dbt_project_dir

pytestmark = pytest.mark.e2e
AS_OF = dt.date(2026, 11, 21)


def test_dagster_runs_are_recorded_in_postgres(postgres, tmp_path, monkeypatch):
    db = postgres.create_database("dagster")
    for key, value in {
        "DAGSTER_PG_USER": postgres.user, "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_DB": db, "DAGSTER_PG_PORT": str(postgres.port),
        "C360_HOME": str(tmp_path), "C360_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "C360_LANDING_DIR": str(tmp_path / "landing"), "C360_OUTBOX_DIR": str(tmp_path / "outbox"),
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")  # the committed example itself
    from orchestration.definitions import defs

    job = defs().resolve_job_def("nightly")
    crm = [dg.AssetKey(["staged", "crm", "contacts"]), dg.AssetKey(["crm", "contacts"])]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=AS_OF.isoformat(),
            asset_selection=crm,
            raise_on_error=False,
        )
        assert result.success
    con = psycopg2.connect(postgres.dsn(db))
    with con.cursor() as cur:
        cur.execute("select status from runs where run_id = %s", [result.run_id])
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute("select count(*) from event_logs where run_id = %s", [result.run_id])
        assert cur.fetchone()[0] > 0
    con.close()


@pytest.fixture(scope="module")
def raw_in_postgres(postgres, tmp_path_factory):
    """Generate ~300 customers, ingest them on DuckDB (the real WAP path), copy raw to Postgres."""
    from orchestration.ingest.wap import publish_batch, stage_batch
    from orchestration.sources.generator import generate
    from orchestration.warehouse import connect

    root = tmp_path_factory.mktemp("pgraw")
    generate(300, 7, AS_OF, root / "landing", root / "truth", progress=None)
    db = postgres.create_database("c360")
    wh = connect(root / "wh.duckdb")
    pg = psycopg2.connect(postgres.dsn(db))
    pg.autocommit = True
    with pg.cursor() as cur:
        cur.execute("create schema raw")
        for c in all_source_contracts():
            batch = stage_batch(wh, c, root / "landing", AS_OF, "pg")
            publish_batch(wh, c, batch, "pg", root / "landing")
            cols = ", ".join(f'"{f.name}" {f.warehouse_type}' for f in c.fields)
            cur.execute(
                f"create table raw.{c.id} ({cols}, _batch_id varchar, _loaded_at timestamp, _source_file varchar)"
            )
            csv_path = root / f"{c.id}.csv"
            wh.execute(f"copy raw.{c.id} to '{csv_path}' (format csv, header true)")
            with csv_path.open() as fh:
                cur.copy_expert(f"copy raw.{c.id} from stdin with (format csv, header true)", fh)
    wh.close()
    yield db, pg
    pg.close()


def test_dbt_build_on_postgres_passes(postgres, raw_in_postgres, tmp_path):
    db, pg = raw_in_postgres
    env = os.environ | {
        "C360_PG_HOST": "127.0.0.1", "C360_PG_PORT": str(postgres.port), "C360_PG_USER": postgres.user,
        "C360_PG_PASSWORD": "", "C360_PG_DATABASE": db, "C360_WAREHOUSE": str(tmp_path / "unused.duckdb"),
    }  # fmt: skip
    dbt = Path(sys.executable).parent / "dbt"
    out = subprocess.run(
        [str(dbt), "build", "--target", "postgres", "--profiles-dir", ".", "--vars", f"{{as_of: '{AS_OF}'}}",
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        cwd=dbt_project_dir(), env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:]
    with pg.cursor() as cur:
        cur.execute("select count(*), count(distinct customer_id) from marts.customer_360")
        n, distinct = cur.fetchone()
        assert n == distinct > 0
        cur.execute("select count(*) from marts.segment_membership")
        assert cur.fetchone()[0] > 0


def test_holdout_bucket_is_identical_on_postgres_duckdb_and_python(postgres, raw_in_postgres):
    _, pg = raw_in_postgres
    ids = [f"c_{i:05d}:vip" for i in range(300)]
    macro = (dbt_project_dir() / "macros" / "normalize.sql").read_text()
    assert "default__hash_bucket" in macro  # the expressions below are the macro's two bodies
    with pg.cursor() as cur:
        cur.execute(
            "select (cast(('x' || substr(md5(t), 1, 8)) as bit(32))::bigint & 4294967295) %% 10000 "
            "from unnest(%s::text[]) with ordinality as u(t, i) order by i",
            [ids],
        )
        on_pg = [r[0] for r in cur.fetchall()]
    on_duck = [
        r[0]
        for r in duckdb.execute(
            "select cast(('0x' || substr(md5(t), 1, 8)) as ubigint) % 10000 from unnest(?) with ordinality as u(t, i) order by i",
            [ids],
        ).fetchall()
    ]
    in_py = [int(hashlib.md5(t.encode()).hexdigest()[:8], 16) % 10000 for t in ids]
    assert on_pg == on_duck == in_py
