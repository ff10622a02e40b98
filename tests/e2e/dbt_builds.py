"""Two `dbt build` processes of the same project on two engines, side by side: wait for both and
check that each built every node of the other."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def wait_for_builds(procs: dict[str, subprocess.Popen], root: Path, timeout: float) -> None:
    """Wait for every build (killing what is left on a timeout); each must exit 0. A build's
    output folder is root/<target>, its console in stdout.txt there."""
    try:
        codes = {target: proc.wait(timeout=timeout) for target, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for target, rc in codes.items():
        log = (root / target / "stdout.txt").read_text()
        assert rc == 0, f"dbt build --target {target} failed:\n{log[-6000:]}"


def assert_every_node_built(build: Path, reference: Path) -> set[str]:
    """Every model and data test of `build` (a build's output folder) passed, nothing the
    manifest holds was skipped, and it ran the same nodes as `reference`; returns their ids."""
    target = build / "target"
    results = json.loads((target / "run_results.json").read_text())["results"]
    # exposures (generated from the sync YAML) have nothing to build: dbt reports them no-op
    bad = [
        (r["unique_id"], r["status"])
        for r in results
        if r["status"] not in ("success", "pass")
        and not (r["unique_id"].startswith("exposure.") and r["status"] == "no-op")
    ]
    assert not bad
    manifest = json.loads((target / "manifest.json").read_text())
    expected = {
        uid
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "test", "seed", "snapshot")
        and node["config"].get("enabled", True)
    }
    ran = {r["unique_id"] for r in results}
    assert expected <= ran, sorted(expected - ran)  # nothing skipped
    assert sum(uid.startswith("test.") for uid in ran) > 5
    assert any(uid.endswith(".customer_360") for uid in ran)
    other = json.loads((reference / "target" / "run_results.json").read_text())["results"]
    assert ran == {r["unique_id"] for r in other}  # the same graph on both engines
    return ran
