"""Source freshness: every raw source table checks `_loaded_at` with thresholds from its
contract's maxStaleDays (warn after maxStaleDays days, error after twice that; none when the
contract sets maxStaleDays null), read from the parsed manifest."""

from __future__ import annotations

import json
import math

from orchestration.contracts.model import all_source_contracts
from orchestration.paths import dbt_project_dir


def test_raw_sources_check_loaded_at_against_the_contracts_max_stale_days() -> None:
    manifest = json.loads((dbt_project_dir() / "target" / "manifest.json").read_text())
    sources = {s["identifier"]: s for s in manifest["sources"].values() if s["schema"] == "raw"}
    contracts = list(all_source_contracts())
    assert contracts
    wrong = []
    for contract in contracts:
        source = sources[contract.id]
        days = contract.max_stale_days
        expected = (
            (None, None)
            if days is None
            else (
                {"count": math.ceil(days), "period": "day"},
                {"count": math.ceil(2 * days), "period": "day"},
            )
        )
        freshness = source["config"].get("freshness") or {}
        actual = (freshness.get("warn_after"), freshness.get("error_after"))
        if days is None:
            actual = tuple(a if a and a.get("count") else None for a in actual)
        if source["loaded_at_field"] != "_loaded_at" or actual != expected:
            wrong.append(f"{contract.id}: {source['loaded_at_field']} {actual} != {expected}")
    assert not wrong, "source freshness out of line with the contracts: " + "; ".join(wrong)
