"""The generator: deterministic, contract-shaped, anchored to as_of, noise profile present."""

import csv
import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestration.contracts.model import all_source_contracts
from orchestration.sources.generator import generate

AS_OF = dt.date(2026, 11, 21)
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with path.open() as fh:
            return list(csv.DictReader(fh))
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    result = generate(1500, 3, AS_OF, root / "landing", root / "truth", progress=None)
    return root, result


def test_same_arguments_give_identical_bytes(generated, tmp_path):
    root, _ = generated
    generate(1500, 3, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None)
    assert _digest(root / "landing") == _digest(tmp_path / "landing")
    assert _digest(root / "truth") == _digest(tmp_path / "truth")


def test_another_seed_gives_other_data(generated, tmp_path):
    root, _ = generated
    generate(1500, 4, AS_OF, tmp_path / "landing", tmp_path / "truth", progress=None)
    assert _digest(root / "landing") != _digest(tmp_path / "landing")


def test_every_contract_gets_a_file_with_exactly_its_columns(generated):
    root, result = generated
    for c in all_source_contracts():
        files = list((root / "landing" / c.source / c.entity / f"dt={AS_OF}").glob("part-*"))
        assert len(files) == 1, c.id
        rows = _rows(files[0])
        assert rows and list(rows[0]) == list(c.column_names), c.id
        assert result.rows[c.id] == len(rows)


def test_no_timestamp_after_the_end_of_as_of(generated):
    root, _ = generated
    limit = f"{AS_OF.isoformat()}T23:59:59Z"
    for c in all_source_contracts():
        # expires_at describes the future on purpose (consent valid until)
        ts_cols = [
            f.name for f in c.fields if f.logical_type == "timestamp" and f.name != "expires_at"
        ]
        for path in (root / "landing" / c.source / c.entity).rglob("part-*"):
            for row in _rows(path):
                for col in ts_cols:
                    v = row[col]
                    if not v or not TS.match(v):
                        continue
                    try:  # planted defects ("2026-13-45T99:00:00Z") do not parse; skip them
                        dt.datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
                    except ValueError:
                        continue
                    assert v <= limit, (c.id, col, v)


def test_truth_covers_every_identity_record_and_manifest_names_real_rows(generated):
    root, _ = generated
    with (root / "truth" / "ground_truth.csv").open() as fh:
        truth = list(csv.DictReader(fh))
    keys = defaultdict(set)
    for t in truth:
        keys[(t["source"], t["entity"])].add(t["source_record_id"])
    contacts = _rows(next((root / "landing" / "crm" / "contacts").rglob("part-*")))
    assert {r["contact_id"] for r in contacts} == keys[("crm", "contacts")]
    events = _rows(next((root / "landing" / "web" / "events").rglob("part-*")))
    assert {r["anonymous_id"] for r in events} == keys[("web", "anonymous_ids")]
    with (root / "truth" / "defects.csv").open() as fh:
        defects = list(csv.DictReader(fh))
    kinds = {d["kind"] for d in defects}
    assert kinds == {"quarantine", "duplicate"}
    rules = {d["rule_id"] for d in defects if d["kind"] == "quarantine"}
    assert {
        "email.format",
        "total_amount.non_negative",
        "occurred_at.type",
        "updated_at.required",
        "event_type.valid_values",
    } <= rules


def test_noise_profile_is_present(generated):
    root, _ = generated
    with (root / "truth" / "ground_truth.csv").open() as fh:
        person_of = {
            (t["source"], t["source_record_id"]): t["person_id"] for t in csv.DictReader(fh)
        }
    contacts = _rows(next((root / "landing" / "crm" / "contacts").rglob("part-*")))
    by_email = defaultdict(set)
    by_name_dob = defaultdict(set)
    for r in contacts:
        if r["email"]:
            by_email[r["email"]].add(person_of[("crm", r["contact_id"])])
        if r["date_of_birth"]:
            by_name_dob[(r["first_name"], r["last_name"], r["date_of_birth"])].add(
                person_of[("crm", r["contact_id"])]
            )
    assert any(len(p) > 1 for p in by_email.values()), "household-shared emails"
    assert any(len(p) > 1 for p in by_name_dob.values()), "namesakes with the same birth date"
    events = _rows(next((root / "landing" / "web" / "events").rglob("part-*")))
    identified = {e["anonymous_id"] for e in events if e["event_name"] == "identify"}
    assert len({e["anonymous_id"] for e in events} - identified) > 0, (
        "anonymous ids never identified"
    )
