"""One ingestion loop over the contracts (issue 18, core 7): the code location holds a staged
batch and a raw table for every file under data_contracts/sources/, with no module naming a
source, and a source with no landing files is a quiet night (zero rows and a note), not an error."""

from __future__ import annotations

import dagster as dg
import duckdb

from orchestration.paths import REPO_ROOT, home_env
from tests.unit.test_masking import AS_OF

CONTRACT_FILES = sorted((REPO_ROOT / "data_contracts" / "sources").glob("*.odcs.yaml"))


def _entities() -> set[tuple[str, str]]:
    """(source, entity) of each contract file, read from its name `<source>__<entity>.odcs.yaml`."""
    return {tuple(p.name.removesuffix(".odcs.yaml").split("__", 1)) for p in CONTRACT_FILES}


def test_every_contract_file_has_its_staged_and_raw_asset_and_nothing_else(tmp_path, monkeypatch):
    for var, value in home_env(tmp_path).items():
        monkeypatch.setenv(var, value)
    from orchestration.definitions import defs

    groups = {}
    for spec in defs().resolve_all_asset_specs():
        if spec.group_name == "ingestion":
            groups[tuple(spec.key.path)] = spec
    expected = {(s, e) for s, e in _entities()} | {("staged", s, e) for s, e in _entities()}
    assert len(CONTRACT_FILES) >= 11 and set(groups) == expected


def test_no_ingestion_module_names_a_source():
    folder = REPO_ROOT / "orchestration" / "defs" / "ingestion"
    modules = {p.name for p in folder.glob("*.py")}
    sources = {s for s, _ in _entities()}
    assert not {f"{s}.py" for s in sources} & modules
    for path in folder.glob("*.py"):
        assert 'build_source_defs("' not in path.read_text(), path.name


def test_a_source_with_no_landing_files_stages_zero_rows_with_a_note(tmp_path):
    from orchestration.defs.ingestion.factory import build_source_defs
    from orchestration.defs.resources import Warehouse

    landing = tmp_path / "landing"  # nothing delivered: not even the source's folder
    landing.mkdir()
    wh = tmp_path / "wh.duckdb"
    result = dg.materialize(
        build_source_defs("email").assets,
        selection=[
            dg.AssetKey(["staged", "email", "engagement"]),
            dg.AssetKey(["email", "engagement"]),
        ],
        partition_key=AS_OF.isoformat(),
        resources={"warehouse": Warehouse(path=str(wh), landing_dir=str(landing))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (staged,) = result.asset_materializations_for_node("staged__email__engagement")
    (raw,) = result.asset_materializations_for_node("email__engagement")
    assert staged.metadata["files"].value == 0
    assert staged.metadata["dagster/row_count"].value == 0
    assert "no new files" in staged.metadata["note"].value
    assert raw.metadata["dagster/row_count"].value == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("select count(*) from raw.email__engagement").fetchone()[0] == 0
