"""The GX batch suite gives the same verdicts whether the batch comes as a whole pandas frame
(validate_frame) or stays in the warehouse (validate_table: column set on the relation's columns,
keys on the key columns alone)."""

import duckdb
import pytest

from orchestration.contracts.gx_suite import validate_frame, validate_table
from orchestration.contracts.model import source_contract

CONTRACT = source_contract("web__events")
COLUMNS = ", ".join(f'"{c}" varchar' for c in CONTRACT.column_names)


def _batch(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"create table clean ({COLUMNS}, _source_file varchar)")
    width = len(CONTRACT.column_names)
    for key in rows:
        con.execute(
            f"insert into clean values ({', '.join(['?'] * (width + 1))})",
            [*key, *([None] * (width - len(key))), "f.jsonl"],
        )
    return con


@pytest.mark.parametrize(
    ("rows", "passes"),
    [
        ([("e1",), ("e2",), ("e3",)], True),
        ([("e1",), ("e2",), ("e1",)], False),  # a duplicate key
        ([("e1",), (None,), ("e3",)], False),  # a missing key
        ([(None,), ("e2",), (None,)], False),  # two missing keys (not duplicates of each other)
        ([("e10",), ("e9",), ("e1",), ("e9 ",)], True),  # ranks keep every distinct key apart
        ([("e3",), ("e1",), ("e2",), ("e3",)], False),  # a duplicate ranked last
        ([], True),  # an empty batch
    ],
)
def test_table_and_frame_agree(rows, passes):
    con = _batch(rows)
    frame = con.execute("select * exclude (_source_file) from clean").fetchdf()
    by_frame = validate_frame(CONTRACT, frame)
    by_table = validate_table(con, CONTRACT, "clean")
    assert by_table.success is passes
    assert by_table == by_frame


def test_a_missing_column_fails_the_column_set():
    con = _batch([("e1",)])
    con.execute(f'alter table clean drop column "{CONTRACT.column_names[-1]}"')
    outcome = validate_table(con, CONTRACT, "clean")
    assert not outcome.success
    assert outcome.failed_expectations == ["expect_table_columns_to_match_set()"]
