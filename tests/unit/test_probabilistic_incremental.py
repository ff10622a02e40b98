"""Scoring only the pairs of new and changed records (identity/scoring_state.py) gives the links
and kept pairs scoring every pair gives, whatever changed between two nights: records added,
removed, edited, and a block growing past the size cap."""

import datetime as dt
import json

import duckdb
import pytest

from orchestration.identity import probabilistic, scoring_state, term_frequencies
from tests.identity_inputs import create_matching_inputs
from tests.unit.test_probabilistic import (
    NAMESAKES,
    SWAPPED,
    TYPO_PAIRS,
    _as_rows,
    _load,
    _record,
    _scoring_model,
)

CAP = 3  # max_block_size: a fourth "Cap Same" pushes their first + last name block past it
SAME = [
    _record(f"r|crm:contacts:C{i}", "crm", "Cap", "Same", f"cap.same{i}@mail.example.org",
            f"+1415666{i:04d}", dt.date(1970 + i, 2, 2), f"7{i:04d}", f"{i} elm st")
    for i in range(4)
]  # fmt: skip


def _background() -> list[tuple]:
    rows = []
    for i in range(60):
        first, last = f"first{i % 12}", f"last{i // 12}"
        rows.append(
            _record(f"r|crm:contacts:B{i:03d}", "crm", first.title(), last.title(),
                    f"{first}.{last}{i}@mail.example.org", f"+1415555{i:04d}",
                    dt.date(1960, 1, 1) + dt.timedelta(days=97 * i), f"9{i:04d}", f"{i} main st")
        )  # fmt: skip
    return rows


def _candidates(rows: list[tuple]):
    con = duckdb.connect()
    create_matching_inputs(con)
    _load(con, rows)
    try:
        return probabilistic.candidates(con)
    finally:
        con.close()


def _pairs(state) -> list[tuple]:
    """The kept pairs, each once (a pair kept and scored again would show twice)."""
    with duckdb.connect(str(state), read_only=True) as con:
        return sorted(con.execute("select * from pairs").fetchall())


@pytest.fixture
def capped(monkeypatch):
    monkeypatch.setenv(
        "C360_DBT_VARS", json.dumps({"identity": {"probabilistic": {"max_block_size": CAP}}})
    )


def test_scoring_only_what_changed_equals_scoring_everything(tmp_path, capped):
    first_night = (
        _background() + [r for pair in TYPO_PAIRS + NAMESAKES + SWAPPED for r in pair] + SAME[:3]
    )
    model = _scoring_model()
    model[term_frequencies.KEY] = term_frequencies.of_records(_candidates(first_night), model)
    state = tmp_path / "scores.duckdb"
    night1 = probabilistic.score(_candidates(first_night), 0.5, model, state, "k")
    assert night1.rescored_records == len(first_night) and night1.kept_pairs == 0
    assert scoring_state.usable(state, "k") and not scoring_state.usable(state, "other")
    # the three Cap Sames share a block under the cap: scored as pairs
    same_keys = {r[0] for r in SAME}
    assert any(a in same_keys and b in same_keys for a, b, *_ in _pairs(state))

    removed = {TYPO_PAIRS[2][1][0], "r|crm:contacts:B007"}
    # the shop account's e-mail corrected: the pair now shares a value (the deterministic rules')
    shop = TYPO_PAIRS[0][1]
    edited = {shop[0]: (*shop[:4], "harriet.quill81@post.example.net", *shop[5:])}
    new = [
        # a new typo partner of a background record and the fourth Cap Same (past the cap)
        _record("r|shop:customers:NEW1", "shop", "First3", "Last0", "first3.last03@mail.example.org"),
        SAME[3],
    ]  # fmt: skip
    second_night = [
        edited.get(r[0], r) for r in first_night if r[0] not in removed
    ] + new  # fmt: skip
    records = _candidates(second_night)
    incremental = probabilistic.score(records, 0.5, model, state, "k")
    fresh_state = tmp_path / "fresh.duckdb"
    everything = probabilistic.score(records, 0.5, model, fresh_state, "k")

    assert everything.rescored_records == len(second_night)
    # the two new records, the edited one and the Cap Sames whose block passed the cap
    assert incremental.rescored_records == 2 + 1 + 3, incremental.rescored_records
    assert incremental.kept_pairs > 0
    assert _as_rows(incremental.links) == _as_rows(everything.links)
    assert incremental.links.schema.metadata == everything.links.schema.metadata
    assert _pairs(state) == _pairs(fresh_state)
    # past the cap, no rule but the name blocks paired the Cap Sames: their pairs are gone
    assert not any(a in same_keys and b in same_keys for a, b, *_ in _pairs(state))

    # the corrected pair, a link on the first night, is the deterministic rules' now
    def linked(links) -> set[tuple]:
        return set(zip(links["record_key"].to_pylist(), links["node_key"].to_pylist(), strict=True))

    pair = tuple(sorted((TYPO_PAIRS[0][0][0], shop[0])))
    assert pair in linked(night1.links) and pair not in linked(incremental.links)


def test_another_scoring_key_scores_everything(tmp_path):
    rows = _background() + [r for pair in TYPO_PAIRS for r in pair]
    records = _candidates(rows)
    model = _scoring_model()
    model[term_frequencies.KEY] = term_frequencies.of_records(records, model)
    state = tmp_path / "scores.duckdb"
    probabilistic.score(records, 0.5, model, state, "model v1")
    again = probabilistic.score(records, 0.5, model, state, "model v2")
    assert again.rescored_records == len(rows) and again.kept_pairs == 0
    same = probabilistic.score(records, 0.5, model, state, "model v2")
    assert same.rescored_records == 0 and same.kept_pairs > 0
    assert _as_rows(same.links) == _as_rows(again.links)


def test_without_the_models_term_frequencies_every_pair_is_scored(tmp_path):
    """A model that keeps no term frequencies (the fixed model, one trained before they were
    kept) lets Splink count tonight's records: no pair's score can be kept."""
    rows = _background() + [r for pair in TYPO_PAIRS for r in pair]
    records = _candidates(rows)
    model = _scoring_model()
    assert term_frequencies.KEY not in model
    state = tmp_path / "scores.duckdb"
    probabilistic.score(records, 0.5, model, state, "k")
    again = probabilistic.score(records, 0.5, model, state, "k")
    assert again.rescored_records == len(rows) and again.kept_pairs == 0
