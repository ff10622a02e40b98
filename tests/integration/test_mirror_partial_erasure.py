"""An incremental activity mirror equals its staging view after an erasure that deleted only some
versions of a key (the versions carrying the person's identifier): the key's remaining older
version must come back, whether the erasure's sweep took the mirror's row or left a version raw
no longer holds. On a copy of the session's warehouse, one incremental `dbt run` of the mirror."""

import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from orchestration import dbt_warm
from orchestration.paths import dbt_project_dir

# reads the shared 2k run: on its worker, so the run is built once
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

MIRROR = "intermediate.int_activity__web_events"


def _rebuild_mirror(warehouse: Path, target: Path) -> None:
    env = {**os.environ, "C360_WAREHOUSE": str(warehouse), "C360_AS_OF": "2026-11-21"}
    env.pop("DBT_FULL_REFRESH", None)
    done = subprocess.run(
        [dbt_warm.executable(), "run", "--profiles-dir", ".", "--select",
         "int_activity__web_events", "--target-path", str(target), "--log-path", str(target)],
        cwd=dbt_project_dir(), env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]


def _rows(con, relation: str, keys: list[str]) -> list[tuple]:
    columns = "* exclude (_loaded_at)" if relation == MIRROR else "*"
    return con.execute(
        f"select {columns} from {relation} where event_id in ? order by event_id", [keys]
    ).fetchall()


def test_a_partly_erased_key_gets_its_older_version_back(pipeline, tmp_path):
    home, _ = pipeline
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(home.warehouse, warehouse)
    con = duckdb.connect(str(warehouse))
    *keys, bystander = [k for (k,) in con.execute(
        "select event_id from raw.web__events order by event_id limit 3").fetchall()]  # fmt: skip
    # a later night publishes a newer version of three events, which the mirror takes in (the
    # third is nobody's erasure: raw's newest stamp stays the mirror's watermark)
    con.execute(
        "insert into raw.web__events select * replace (received_at + interval 1 hour as "
        "received_at, _loaded_at + interval 1 day as _loaded_at) from raw.web__events "
        "where event_id in ?",
        [[*keys, bystander]],
    )
    con.close()
    _rebuild_mirror(warehouse, tmp_path / "target")
    con = duckdb.connect(str(warehouse))
    assert _rows(con, MIRROR, keys) == _rows(con, "staging.stg_web__events", keys)
    # then an erasure deletes those newer versions only
    con.execute(
        "delete from raw.web__events where event_id in ? and _loaded_at = "
        "(select max(_loaded_at) from raw.web__events as v where v.event_id = web__events.event_id)",
        [keys],
    )
    # the sweep took the first key's mirror row; the second's mirrored version is simply gone
    con.execute(f"delete from {MIRROR} where event_id = ?", [keys[0]])
    assert _rows(con, MIRROR, keys) != _rows(con, "staging.stg_web__events", keys)
    con.close()

    _rebuild_mirror(warehouse, tmp_path / "target")

    con = duckdb.connect(str(warehouse), read_only=True)
    staged = _rows(con, "staging.stg_web__events", keys)
    assert len(staged) == 2
    assert _rows(con, MIRROR, keys) == staged
    assert (
        con.execute(
            f"select count(*) from (select * exclude (_loaded_at) from {MIRROR} "
            "except all select * from staging.stg_web__events)"
        ).fetchone()[0]
        == 0
    )
