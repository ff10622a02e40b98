"""`c360 identity evaluate --truth FILE` reads that one file (issue 14, core 4: paths are literal).

DuckDB's read_csv expands `[ ] * ?` in any path it is given as a glob: `--truth truth[1].csv`
scored `truth1.csv` beside it, `truth*.csv` and `truth?.csv` read every file their pattern
matched, and a missing `missing[1].csv` read a `missing1.csv` it was never asked for. The truth
file is read by its glob-escaped absolute path (landing.glob_escaped), in a folder with glob
characters too.

The live readers of generated landing files (demo/live_crm.py, live_shop.py)
read every file under a landing folder the user names: they are checked here the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from orchestration.identity.evaluate import evaluate

# customer_id_map: four records, two customers. The right truth agrees with it (precision and
# recall 1); the decoy truth puts every record in one person (recall 1, precision 1/3).
MAP = [
    ("crm", "contacts", "C1", "cust-a"),
    ("crm", "contacts", "C2", "cust-a"),
    ("shop", "customers", "S1", "cust-b"),
    ("shop", "customers", "S2", "cust-b"),
]
RIGHT = [(s, e, r, "p-" + c) for s, e, r, c in MAP]
DECOY = [(s, e, r, "p-one") for s, e, r, _ in MAP]


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("create schema marts; create schema intermediate")
    c.execute(
        "create table marts.customer_id_map (source varchar, entity varchar, "
        "source_record_id varchar, customer_id varchar, record_key varchar)"
    )
    c.executemany(
        "insert into marts.customer_id_map values (?, ?, ?, ?, ?)",
        [(*m, f"{m[0]}:{m[2]}") for m in MAP],
    )
    c.execute("create table intermediate.int_identity__candidate_links (record_key varchar)")
    yield c
    c.close()


def _truth(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "entity", "source_record_id", "person_id"])
        w.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("name", "decoys"),
    [
        ("truth[1].csv", ["truth1.csv"]),  # the bracket class matched the decoy only
        ("truth*.csv", ["truth_old.csv"]),  # the star matched both files
        ("truth?.csv", ["truthX.csv"]),
        ("run[1]/truth.csv", ["run1/truth.csv"]),  # a folder with glob characters
    ],
)
def test_a_truth_file_with_glob_characters_is_read_as_itself(con, tmp_path, name, decoys):
    for decoy in decoys:
        _truth(tmp_path / decoy, DECOY)
    truth = _truth(tmp_path / name, RIGHT)
    score = evaluate(con, truth)
    assert score.records_scored == 4 and score.records_unmatched_in_truth == 0
    assert (score.precision, score.recall) == (1.0, 1.0)
    assert (score.true_pairs, score.predicted_pairs, score.correct_pairs) == (2, 2, 2)


def test_a_relative_truth_path_with_glob_characters_is_read_as_itself(con, tmp_path, monkeypatch):
    _truth(tmp_path / "truth1.csv", DECOY)
    _truth(tmp_path / "truth[1].csv", RIGHT)
    monkeypatch.chdir(tmp_path)
    score = evaluate(con, Path("truth[1].csv"))
    assert (score.precision, score.recall) == (1.0, 1.0)


def test_a_missing_glob_named_truth_file_is_refused_not_matched_to_a_sibling(con, tmp_path):
    _truth(tmp_path / "missing1.csv", RIGHT)
    with pytest.raises(ValueError, match=r"missing\[1\]\.csv: truth file not found"):
        evaluate(con, tmp_path / "missing[1].csv")


def test_a_truth_file_with_a_quote_in_its_name_is_read(con, tmp_path):
    truth = _truth(tmp_path / "o'brien truth.csv", RIGHT)
    assert evaluate(con, truth).records_scored == 4


# --- the live readers of generated landing files ------------------------------------------


def _crm_csv(path: Path, contact_id: str, updated_at: str, **values: str) -> None:
    from orchestration.contracts.model import source_contract

    cols = source_contract("crm__contacts").column_names
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerow(
            dict.fromkeys(cols, "") | {"contact_id": contact_id, "updated_at": updated_at} | values
        )


def test_live_crm_reads_glob_named_files_and_folders_as_themselves(tmp_path):
    from demo.live_crm import _latest_rows
    from orchestration.contracts.model import source_contract

    ts = "2026-11-21T09:00:00Z"
    for landing in (tmp_path / "landing", tmp_path / "landing[1]"):
        # files: part[1].csv read part1.csv; folders: landing[1]/ read landing1/ when it exists
        folder = landing / "crm" / "contacts" / "dt=2026-11-21"
        _crm_csv(folder / "part[1].csv", "C1", ts)
        _crm_csv(folder / "part1.csv", "C2", ts)
    _crm_csv(tmp_path / "landing1" / "crm" / "contacts" / "dt=2026-11-21" / "part[1].csv", "C3", ts)
    for landing in (tmp_path / "landing", tmp_path / "landing[1]"):
        cols, rows = _latest_rows(landing, source_contract("crm__contacts"))
        assert sorted(r[cols.index("contact_id")] for r in rows) == ["C1", "C2"], landing


def test_live_crm_keeps_the_latest_version_by_file_name(tmp_path):
    """The tie-break on equal updated_at is the later file name: the real name, not a link's."""
    from demo.live_crm import _latest_rows
    from orchestration.contracts.model import source_contract

    folder = tmp_path / "landing" / "crm" / "contacts" / "dt=2026-11-21"
    ts = "2026-11-21T09:00:00Z"
    _crm_csv(folder / "a[0].csv", "C1", ts, city="Older")
    _crm_csv(folder / "b[0].csv", "C1", ts, city="Later")
    cols, rows = _latest_rows(tmp_path / "landing", source_contract("crm__contacts"))
    assert [r[cols.index("city")] for r in rows] == ["Later"]


def test_live_shop_reads_glob_named_files_as_themselves(tmp_path):
    from demo.live_shop import load_landing

    folder = tmp_path / "landing" / "shop" / "customers" / "dt=2026-11-21"
    folder.mkdir(parents=True)
    ts = dt.datetime(2026, 11, 21, 9).isoformat()
    (folder / "part[1].jsonl").write_text(
        json.dumps({"shop_customer_id": "S1", "updated_at": ts}) + "\n"
    )
    (folder / "part1.jsonl").write_text(
        json.dumps({"shop_customer_id": "S2", "updated_at": ts}) + "\n"
    )
    store = load_landing(tmp_path / "landing")
    assert sorted(store.customers) == ["S1", "S2"]
