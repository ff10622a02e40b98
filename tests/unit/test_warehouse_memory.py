"""The warehouse and the scratch databases of one process share C360_DUCKDB_MEMORY_LIMIT.

Grain: one assertion per situation (warehouse alone, warehouse + scratch, two scratches, a scratch
closed), each reading `current_setting('memory_limit')` of every open connection.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration import warehouse

BUDGET = "700MB"  # shares stay under 1 GiB, where DuckDB reports to 0.1 MiB


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("C360_DUCKDB_MEMORY_LIMIT", BUDGET)
    monkeypatch.setenv("C360_DUCKDB_TEMP_DIR", str(tmp_path / "spill"))
    monkeypatch.delenv("C360_DUCKDB_SCRATCH_SHARE", raising=False)
    return 700 * 1000**2


def _limit(con) -> int:
    text = con.execute("select current_setting('memory_limit')").fetchone()[0]
    value = warehouse.memory_bytes(text)
    assert value is not None, text
    return value


def test_memory_bytes_reads_duckdb_units() -> None:
    assert warehouse.memory_bytes("4GB") == 4 * 1000**3
    assert warehouse.memory_bytes("306.1 MiB") == int(306.1 * 1024**2)
    assert warehouse.memory_bytes("512KiB") == 512 * 1024
    assert warehouse.memory_bytes("80%") is None


def test_warehouse_and_scratch_together_stay_within_the_budget(budget, tmp_path) -> None:
    wh = warehouse.connect(tmp_path / "w.duckdb")
    try:
        assert budget - 1024**2 < _limit(wh) <= budget  # alone: the whole budget
        pending = wh.execute("select * from range(5)")  # a result the caller is still reading
        sc = warehouse.scratch()
        try:
            assert len(pending.fetchall()) == 5, "re-dividing must not disturb a pending result"
            w, s = _limit(wh), _limit(sc)
            assert w + s <= budget
            assert s == pytest.approx(budget / 2, abs=1024**2)  # the default share, 0.5
            sc2 = warehouse.scratch()
            try:
                total = _limit(wh) + _limit(sc) + _limit(sc2)
                assert total <= budget
                assert _limit(sc) == _limit(sc2)
            finally:
                sc2.close()
        finally:
            sc.close()
        # the closed scratches give their share back at the next open
        again = warehouse.connect(tmp_path / "w.duckdb")
        try:
            assert budget - 1024**2 < _limit(wh) <= budget
        finally:
            again.close()
    finally:
        wh.close()


def test_scratch_alone_gets_the_whole_budget_and_the_share_is_configurable(
    budget, tmp_path, monkeypatch
) -> None:
    sc = warehouse.scratch()
    try:
        assert budget - 1024**2 < _limit(sc) <= budget
    finally:
        sc.close()
    monkeypatch.setenv("C360_DUCKDB_SCRATCH_SHARE", "0.25")
    with warehouse.warehouse(tmp_path / "w.duckdb") as wh:
        sc = warehouse.scratch()
        try:
            w, s = _limit(wh), _limit(sc)
        finally:
            sc.close()
    assert w + s <= budget
    assert s == pytest.approx(budget / 4, abs=1024**2)
    monkeypatch.setenv("C360_DUCKDB_SCRATCH_SHARE", "1.5")
    with pytest.raises(ValueError, match="C360_DUCKDB_SCRATCH_SHARE"):
        warehouse.scratch_share()
