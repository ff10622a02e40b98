"""Incremental models (issue 19 core 2) equal a full refresh over consecutive generated days.

One home runs four consecutive nightlies: day 1 the generator's full snapshot, each later day
every 10th row of that day's snapshot (records with later values and the day's new ones), and on
day 3 an erasure request. After every night, a copy of its warehouse is rebuilt by dbt with
DBT_FULL_REFRESH (what `c360 run --full-refresh` sets) at the same as_of — the incremental models
and everything downstream of them — and every table of the intermediate and marts schemas (every
mart and every incremental model) must hold the same rows in the home and in the copy,
order-independent, load stamps left out. The copy starts from the same raw and identity state,
so this is the night a full-refresh home would have run; a full nightly per day in a second
home would double the test's minutes for no other difference (the incremental models keep no
state but their own rows). Then the home runs an earlier as_of (a backfill), checked the same
way. The home really is incremental: a value the test changes in one of its mirror rows (a
column no model reads, of an event the next day does not deliver again) survives that night and
is put back before the comparison; the erased person's orders leave its order mirror.

Then two nights with nothing new: the identity chain's `reusable_table` models keep their tables
(their code and inputs are those of their last build: dbt_project/macros/reusable_table.sql) and
still equal the full refresh; a row the test deletes from one of them between the two nights
makes that one rebuilt the next, and only it among those its change does not reach."""

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from bench.nightly import sample_snapshot
from orchestration import dbt_warm
from orchestration.dbt_invocations import full_refresh_values
from tests.integration.conftest import make_home
from tests.integration.test_rerun_and_gates import RUN_METADATA

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="incremental_models")]

D0 = dt.date(2026, 11, 15)
DAYS = 4  # day 1 tampers a mirrored row, day 2 erases, day 3 follows the erasure
# the identity chain's models that read no run value, or the as_of only in filters they declare
# (records, candidate links: meta.as_of_filters): kept on a night that changes none of their
# inputs (limit drops and components read the limit check, which reads the as_of)
REUSABLE = ("int_identity__records", "int_identity__candidate_links",
            "int_identity__name_conflicts", "int_identity__dropped_links",
            "int_identity__deterministic_edges", "int_identity__clusters",
            "int_identity__node_types")  # fmt: skip
# kept across as_ofs with their as_of columns set to the night's (meta.kept_across_as_of): the
# persistent ids, the map and the final links, on a night that changes nothing they read
KEPT_ACROSS_AS_OFS = ("int_identity__edges", "int_identity__assignments", "customer_id_map")
CUSTOMERS = 150
SEED = 29
ERASURE_DAY = 2  # index of the night whose landing files carry the erasure request
INCREMENTAL = ("int_activity__web_events", "int_activity__orders", "int_activity__email_engagement")
# differ between homes by design: the load stamps and batch ids of the home's own ingestion
HOME_METADATA = RUN_METADATA | {"_batch_id", "_source_file"}
# the passes the components took: a night starting from the last components takes fewer
PASS_LOG = "intermediate.int_identity__clusters__cc_passes"


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('intermediate', 'marts') and table_type = 'BASE TABLE' "
        "order by all"
    ).fetchall()


def _rows(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple]:
    columns = [
        c
        for (c,) in con.execute(
            "select column_name from information_schema.columns where table_schema = ? "
            "and table_name = ? order by ordinal_position",
            [schema, table],
        ).fetchall()
        if c not in HOME_METADATA
    ]
    select = ", ".join(f'cast("{c}" as varchar)' for c in columns)
    return sorted(
        con.execute(f'select {select} from "{schema}"."{table}"').fetchall(),
        key=lambda row: tuple("" if v is None else v for v in row),
    )


def _snapshot(warehouse: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {f"{s}.{t}": _rows(con, s, t) for s, t in _tables(con) if f"{s}.{t}" != PASS_LOG}


def _components_from_last(warehouse: Path) -> bool:
    """Whether the components' first pass worked on fewer nodes than the graph has (the night
    started from the last build's components: macros/incremental_components.sql)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            f"select (select active_nodes from {PASS_LOG} where pass = 1) "
            "< (select count(*) from intermediate.int_identity__clusters)"
        ).fetchone()[0]


def _built(warehouse: Path) -> dict[str, str]:
    """The run that last built each reusable_table model's table (audit.model_fingerprints)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return dict(
            con.execute("select model, built_by_run from audit.model_fingerprints").fetchall()
        )


def _reported_reused(instance, run_id: str) -> set[str]:
    """The dbt models whose materialization in the run says `c360/reused`."""
    import dagster as dg

    out = set()
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        metadata = record.asset_materialization.metadata
        if "c360/reused" in metadata and metadata["c360/reused"].value is True:
            out.add(record.asset_materialization.asset_key.path[-1])
    return out


def _platform(warehouse: Path, event_id: str, value: str | None = None) -> str:
    """The mirror's `platform` of one web event (set to `value` first when given)."""
    with duckdb.connect(str(warehouse)) as con:
        if value is not None:
            con.execute(
                "update intermediate.int_activity__web_events set platform = ? where event_id = ?",
                [value, event_id],
            )
        return con.execute(
            "select platform from intermediate.int_activity__web_events where event_id = ?",
            [event_id],
        ).fetchone()[0]


def _differences(left: dict[str, list[tuple]], right: dict[str, list[tuple]]) -> list[str]:
    out = [f"{t}: only in one home" for t in sorted(left.keys() ^ right.keys())]
    for table in sorted(left.keys() & right.keys()):
        a, b = left[table], right[table]
        if a != b:
            only_a = len([r for r in a if r not in b])
            only_b = len([r for r in b if r not in a])
            out.append(f"{table}: {len(a)} vs {len(b)} rows, {only_a} / {only_b} rows unmatched")
    return out


def _full_refresh(warehouse: Path, as_of: dt.date, work: Path) -> dict[str, list[tuple]]:
    """Copy the warehouse, rebuild the incremental models and everything downstream of them in
    the copy with DBT_FULL_REFRESH at `as_of`, and return the copy's tables."""
    from orchestration.paths import dbt_project_dir

    copy = work / "full_refresh.duckdb"
    # the last copy's write-ahead log too: a dbt child of the warm server exits without
    # checkpointing, and a log left beside a new copy belongs to another database
    for stale in (copy, copy.with_name(copy.name + ".wal")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(warehouse, copy)
    selected = " ".join(f"{m}+" for m in INCREMENTAL)
    env = {
        **os.environ,
        "C360_WAREHOUSE": str(copy),
        "C360_AS_OF": as_of.isoformat(),
        **full_refresh_values(True),
    }
    done = subprocess.run(
        [dbt_warm.executable(), "run", "--profiles-dir", ".",
         "--select", selected, "--target-path", str(work / "target"),
         "--log-path", str(work / "logs")],
        cwd=dbt_project_dir(), env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    return _snapshot(copy)


def test_incremental_nights_equal_full_refresh_table_by_table(tmp_path, monkeypatch):
    from demo.generator import generate
    from orchestration.pipeline import run_nightly
    from orchestration.privacy.queue import queue_request

    home = make_home(tmp_path / "home", monkeypatch)
    warehouse = home.warehouse
    changed: dict[str, str] = {}  # event_id -> its platform before the test changed it
    run_ids: list[str] = []
    from_last: list[bool] = []  # per night: the components started from the last build's

    def night(as_of: dt.date) -> dict[str, list[tuple]]:
        report = run_nightly(as_of, instance=home.instance, log_level="WARNING")
        assert report.success, (as_of, report.checks_failed)
        run_ids.append(report.run_id)
        from_last.append(_components_from_last(warehouse))
        for event_id, platform in changed.items():
            assert _platform(warehouse, event_id) == "changed-by-test", "the mirror was rebuilt"
            assert _platform(warehouse, event_id, platform) == platform
        changed.clear()
        incremental = _snapshot(warehouse)
        full = _full_refresh(warehouse, as_of, tmp_path)
        assert set(incremental) >= {f"intermediate.{m}" for m in INCREMENTAL}
        assert not _differences(incremental, full), (as_of, _differences(incremental, full))
        return incremental

    generate(CUSTOMERS, SEED, D0, home.landing, tmp_path / "truth", progress=None)
    first = night(D0)
    assert all(first[f"intermediate.{m}"] for m in INCREMENTAL)

    erased_orders: set[str] = set()
    sampled, generated = tmp_path / "sampled", tmp_path / "generated"
    for day in range(1, DAYS):
        as_of = D0 + dt.timedelta(days=day)
        generate(CUSTOMERS, SEED, as_of, generated, tmp_path / f"truth{day}", progress=None)
        assert sample_snapshot(generated, sampled, 10) > 0
        shutil.rmtree(generated)
        if day == 1:
            # an event the day does not deliver again: an incremental night leaves its row alone
            delivered = {
                json.loads(line)["event_id"]
                for path in (sampled / "web" / "events").rglob("*.jsonl")
                for line in path.read_text().splitlines()
                if line.strip()
            }
            with duckdb.connect(str(warehouse), read_only=True) as con:
                mirrored = con.execute(
                    "select event_id, platform from intermediate.int_activity__web_events "
                    "order by event_id"
                ).fetchall()
            event_id, platform = next(r for r in mirrored if r[0] not in delivered)
            assert _platform(warehouse, event_id, "changed-by-test") == "changed-by-test"
            changed[event_id] = platform
        if day == ERASURE_DAY:
            # the shop customer with the most orders in the mirror: the request names their email
            with duckdb.connect(str(warehouse), read_only=True) as con:
                email, shop_id = con.execute(
                    "select c.email_normalized, c.shop_customer_id "
                    "from staging.stg_shop__customers c join intermediate.int_activity__orders o "
                    "using (shop_customer_id) where c.email_normalized is not null "
                    "group by all order by count(*) desc, 2 limit 1"
                ).fetchone()
                erased_orders = {
                    o
                    for (o,) in con.execute(
                        "select order_id from intermediate.int_activity__orders "
                        "where shop_customer_id = ?",
                        [shop_id],
                    ).fetchall()
                }
            queue_request(sampled, "email", email, as_of)
        shutil.copytree(sampled, home.landing, dirs_exist_ok=True)
        shutil.rmtree(sampled)
        tables = night(as_of)
        if day >= ERASURE_DAY:
            kept = {r[0] for r in tables["intermediate.int_activity__orders"]}
            assert erased_orders and not kept & erased_orders

    # the first night computes every component; a later night that only added links and records
    # started from the last build's, and still equals the full refresh (night())
    assert from_last[0] is False and any(from_last[1:DAYS]), from_last

    # nights with nothing new: the chain's tables are kept, and equal a full refresh
    last = D0 + dt.timedelta(days=DAYS - 1)
    before = _built(warehouse)
    assert set(before) >= {f"model.c360.{m}" for m in REUSABLE}
    night(last + dt.timedelta(days=1))
    after = _built(warehouse)
    assert [m for m in REUSABLE if after[f"model.c360.{m}"] != before[f"model.c360.{m}"]] == []
    assert set(REUSABLE) <= _reported_reused(home.instance, run_ids[-1])
    assert set(KEPT_ACROSS_AS_OFS) <= _reported_reused(home.instance, run_ids[-1])
    # a table changed since its build (by hand here) is rebuilt, its readers are kept
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "delete from intermediate.int_identity__clusters where node_key = "
            "(select min(node_key) from intermediate.int_identity__clusters)"
        )
    night(last + dt.timedelta(days=2))
    rebuilt = _built(warehouse)
    changed_models = [m for m in REUSABLE if rebuilt[f"model.c360.{m}"] != after[f"model.c360.{m}"]]
    assert changed_models == ["int_identity__clusters"]

    # a backfill at an earlier as_of than the last night
    night(D0 + dt.timedelta(days=1))
