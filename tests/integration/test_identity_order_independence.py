"""Shuffled and re-batched input → the same customer_ids: the same landing rows, shuffled inside
every file and split into two files per batch, resolve to exactly the ids of the original order."""

import datetime as dt
import random
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="identity_order_independence")]
D0 = dt.date(2026, 11, 18)


def _ids(warehouse: Path) -> dict[str, str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return dict(
            con.execute("select record_key, customer_id from marts.customer_id_map").fetchall()
        )


def _shuffle_and_split(src: Path, dst: Path, rng: random.Random) -> None:
    """Rows shuffled, then written as two part files (same header / schema)."""
    dst.mkdir(parents=True, exist_ok=True)
    stem, ext = src.stem, src.suffix
    if ext == ".parquet":
        table = pq.read_table(src)
        order = list(range(table.num_rows))
        rng.shuffle(order)
        half = len(order) // 2
        for part, rows in (("a", order[:half]), ("b", order[half:])):
            pq.write_table(table.take(pa.array(rows, pa.int64())), dst / f"{stem}-{part}{ext}")
        return
    lines = src.read_text().splitlines(keepends=True)
    header, body = (lines[:1], lines[1:]) if ext == ".csv" else ([], lines)
    rng.shuffle(body)
    half = len(body) // 2
    (dst / f"{stem}-a{ext}").write_text("".join(header + body[:half]))
    (dst / f"{stem}-b{ext}").write_text("".join(header + body[half:]))


def test_shuffled_and_rebatched_input_gives_the_same_ids(tmp_path, monkeypatch):
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    original = make_home(tmp_path / "original", monkeypatch)
    generate(400, 33, D0, original.landing, original.truth, progress=None)
    assert run_nightly(D0, instance=original.instance, log_level="WARNING").success
    expected = _ids(original.warehouse)

    shuffled = make_home(tmp_path / "shuffled", monkeypatch)
    rng = random.Random(5)
    files = sorted(p for p in original.landing.rglob("*") if p.is_file())
    for path in files:
        target_dir = shuffled.landing / path.parent.relative_to(original.landing)
        if path.stat().st_size < 200:  # too small to split meaningfully: copy as is
            target_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target_dir / path.name)
        else:
            _shuffle_and_split(path, target_dir, rng)
    assert len(list(shuffled.landing.rglob("*-b.*"))) >= 8  # every source really was re-batched
    assert run_nightly(D0, instance=shuffled.instance, log_level="WARNING").success
    got = _ids(shuffled.warehouse)

    assert len(expected) > 400
    assert got == expected
