"""The staged asset's own metadata shows what discovery refused (issue 14, core 4 leftover).

Links leaving the landing folder, broken links and invalid `dt=` folders were refused by name in
the gate's notes and the batch's audit outcome, but the staged asset's materialization (what the
Dagster UI shows for the step that read the landing folder) said nothing: a refused file looked
like no file. Its metadata now counts them by kind and names each, relative to the landing
folder (never where a link points), a name that looks like personal data masked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg

from orchestration.defs.ingestion.factory import shown_path
from tests.ingest_night import copy_landing
from tests.unit.test_masking import AS_OF, CANARY, EMAIL, PHONE, generated  # noqa: F401

CONTACTS = "crm__contacts"


def _materialize(tmp_path: Path, landing: Path) -> dict:
    from orchestration.defs.ingestion.factory import build_source_defs
    from orchestration.defs.resources import Warehouse

    staged = next(
        a
        for a in build_source_defs("crm").assets
        if a.key == dg.AssetKey(["staged", "crm", "contacts"])
    )
    result = dg.materialize(
        [staged],
        partition_key=AS_OF.isoformat(),
        resources={
            "warehouse": Warehouse(path=str(tmp_path / "wh.duckdb"), landing_dir=str(landing))
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    (mat,) = result.asset_materializations_for_node("staged__crm__contacts")
    return {k: v.value for k, v in mat.metadata.items()}


def test_refused_links_and_dt_folders_show_in_the_staged_metadata(tmp_path, generated):  # noqa: F811
    landing = tmp_path / "landing"
    good = copy_landing(generated, landing, CONTACTS, AS_OF)
    entity = good.parent.parent
    outside = tmp_path / "elsewhere" / "home-of-someone"
    outside.mkdir(parents=True)
    secret = outside / "passwd.csv"
    shutil.copy(good, secret)
    (good.parent / "evil.csv").symlink_to(secret)  # a file link leaving the landing folder
    (good.parent / f"{EMAIL}.csv").symlink_to(secret)  # ... named after a customer
    (good.parent / "more").symlink_to(outside, target_is_directory=True)  # a folder link
    (good.parent / "gone.csv").symlink_to(good.with_name("missing.csv"))  # a broken link
    bad = entity / "dt=2026-02-30"  # an invalid dt= folder
    bad.mkdir()
    shutil.copy(good, bad / "part-00000.csv")

    md = _materialize(tmp_path, landing)

    day = f"crm/contacts/dt={AS_OF.isoformat()}"
    assert md["refused"] == 5
    assert md["refused_by_kind"] == {
        "link_outside_landing": 3,
        "broken_link": 1,
        "invalid_dt_folder": 1,
    }
    assert md["refused_paths"] == [  # in path order
        {"path": "crm/contacts/dt=2026-02-30", "kind": "invalid_dt_folder"},
        {"path": f"{day}/c***@***.org.csv", "kind": "link_outside_landing"},
        {"path": f"{day}/evil.csv", "kind": "link_outside_landing"},
        {"path": f"{day}/gone.csv", "kind": "broken_link"},
        {"path": f"{day}/more", "kind": "link_outside_landing"},
    ]
    # the rest landed; the metadata names nothing outside the landing folder, no customer
    assert md["files"] == 1 and md["extracted"] > 0
    text = json.dumps(md, default=str)
    assert str(tmp_path) not in text.replace(str(tmp_path / "reports"), "")
    assert "home-of-someone" not in text and not CANARY.search(text)


def test_a_clean_landing_folder_shows_nothing_refused(tmp_path, generated):  # noqa: F811
    landing = tmp_path / "landing"
    copy_landing(generated, landing, CONTACTS, AS_OF)
    md = _materialize(tmp_path, landing)
    assert md["refused"] == 0 and md["refused_paths"] == [] and md["refused_by_kind"] == {}
    assert md["same_content"] == 0


def test_the_same_bytes_under_a_new_path_show_as_recorded_without_a_read(tmp_path, generated):  # noqa: F811
    landing = tmp_path / "landing"
    good = copy_landing(generated, landing, CONTACTS, AS_OF)
    shutil.copy(good, good.with_name("part-00000-copy.csv"))
    md = _materialize(tmp_path, landing)
    day = f"crm/contacts/dt={AS_OF.isoformat()}"
    assert md["same_content"] == 1
    copy, first = f"{day}/part-00000-copy.csv", f"{day}/part-00000.csv"
    assert md["same_content_paths"] in ({copy: first}, {first: copy})


def test_shown_paths_are_relative_and_mask_names_that_look_like_personal_data(tmp_path):
    landing = tmp_path / "landing"
    d = landing / "crm" / "contacts"
    assert shown_path(str(d / "dt=2026-02-30"), landing) == "crm/contacts/dt=2026-02-30"
    assert shown_path(str(d / "part[1].csv"), landing) == "crm/contacts/part[1].csv"
    assert shown_path(str(d / f"{EMAIL}.csv"), landing) == "crm/contacts/c***@***.org.csv"
    assert shown_path(str(d / f"{PHONE}.csv"), landing) == "crm/contacts/***77.csv"
    assert shown_path(str(d / "Quillon Zabrowski.jsonl"), landing) == "crm/contacts/Q***.jsonl"
    assert shown_path(str(tmp_path / "elsewhere" / "x.csv"), landing) == "x.csv"
