"""The nightly partitions start at a configured date, and `make ui` takes the warehouse's first
night, so a demo's UI does not read "0 % filled" over years of days that could never have run."""

import datetime as dt

import pytest

from orchestration import first_night, run_model
from orchestration.warehouse import connect


def test_partitions_start_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C360_PARTITIONS_START", "2026-11-20")
    partitions = run_model.daily_partitions(run_model.partitions_start())
    keys = partitions.get_partition_keys(current_time=dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC))
    assert keys[0] == "2026-11-20"
    assert "2026-11-19" not in keys


def test_partitions_start_refuses_a_non_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C360_PARTITIONS_START", "20/11/2026")
    with pytest.raises(ValueError, match=r"C360_PARTITIONS_START.*YYYY-MM-DD"):
        run_model.partitions_start()


def test_first_night_reads_the_earliest_batch(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "tmp"))
    db = tmp_path / "warehouse.duckdb"
    assert first_night.first_as_of(db) is None  # no warehouse yet
    con = connect(db)
    con.execute("create table audit.ingestion_batches (batch_id varchar, as_of date)")
    con.close()
    assert first_night.first_as_of(db) is None  # no run yet
    con = connect(db)
    con.execute(
        "insert into audit.ingestion_batches values ('b', date '2026-11-21'), ('a', date '2026-11-19')"
    )
    con.close()
    assert first_night.first_as_of(db) == "2026-11-19"
