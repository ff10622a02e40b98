"""A newcomer adds a source entity (issue 18, "done when"): in a temporary copy of the project,
a contract file, a staging model and landing files are all it takes — `c360 contracts compile`
writes its dbt sources YAML, and a small nightly ingests, gates, publishes and stages it — and no
other file of the project changes.

Not covered yet (see the issue): a trait on the new entity still needs three places
(customer_360.sql, _customer_360.yml, data_contracts/marts/customer_360.odcs.yaml), and a segment
on it `c360 segments compile`."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from orchestration.paths import REPO_ROOT, home_env

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="newcomer")]

AS_OF = dt.date(2026, 11, 21)
# what dbt and Python write while running (ignored by .gitignore), not the project's files
RUNTIME = {"target", "logs", "__pycache__", ".pytest_cache", ".ruff_cache", ".user.yml"}

CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: reviews__ratings
name: reviews__ratings
version: 1.0.0
status: active
domain: reviews
tenant: single-brand
description:
  purpose: "Product ratings left by customers on the review platform."
customProperties:
  - {property: duplicatePolicy, value: keep_latest}
  - {property: orderingColumn, value: updated_at}
  - {property: maxStaleDays, value: 30}
schema:
  - name: reviews__ratings
    physicalName: reviews__ratings
    physicalType: table
    logicalType: object
    description: "One row per rating version; the latest updated_at per rating_id wins."
    properties:
      - {name: rating_id, logicalType: string, physicalType: varchar, primaryKey: true, primaryKeyPosition: 1, required: true, classification: internal}
      - {name: crm_contact_id, logicalType: string, physicalType: varchar, required: true, classification: internal, description: CRM contact who rated.}
      - {name: stars, logicalType: integer, physicalType: bigint, required: true, classification: internal, description: Stars given (1-5).}
      - {name: updated_at, logicalType: timestamp, physicalType: timestamp, required: true, classification: internal}
"""

STAGING_MODEL = """with source as (
    {{ latest_version(source('reviews', 'ratings'), 'rating_id', 'updated_at') }}
),

renamed as (
    select
        rating_id,
        crm_contact_id,
        stars,
        updated_at
    from source
)

select * from renamed
"""


def _project_files(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not RUNTIME & set(rel.parts):
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _copy_project(dest: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        src = REPO_ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    # the parsed project, so only what the newcomer adds is parsed again
    shutil.copytree(REPO_ROOT / "dbt_project/target", dest / "dbt_project/target")


def _c360(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result


def test_a_new_source_entity_is_a_contract_a_staging_model_and_landing_files(tmp_path):
    project, home = tmp_path / "project", tmp_path / "home"
    _copy_project(project)
    env = os.environ | home_env(home) | {"PYTHONPATH": str(project)}
    _c360(project, env, "generate", "--customers", "200", "--seed", "5", "--as-of", str(AS_OF))
    before = _project_files(project)

    # what the newcomer writes: the contract, the staging model, the landing files
    (project / "data_contracts/sources/reviews__ratings.odcs.yaml").write_text(CONTRACT)
    model = project / "dbt_project/models/staging/reviews/stg_reviews__ratings.sql"
    model.parent.mkdir(parents=True)
    model.write_text(STAGING_MODEL)
    contacts = sorted((home / "landing/crm/contacts").rglob("*.csv"))
    with contacts[0].open(newline="") as fh:
        contact_ids = [r["contact_id"] for r in csv.DictReader(fh)][:40]
    landing = home / f"landing/reviews/ratings/dt={AS_OF.isoformat()}"
    landing.mkdir(parents=True)
    rows = [
        (f"R{i}", cid, 1 + i % 5, f"{AS_OF.isoformat()}T10:00:00Z")
        for i, cid in enumerate(contact_ids)
    ]
    lines = ["rating_id,crm_contact_id,stars,updated_at", *(",".join(map(str, r)) for r in rows)]
    (landing / "ratings.csv").write_text("\n".join(lines) + "\n")

    compiled = _c360(project, env, "contracts", "compile")
    assert "_reviews__sources.yml" in compiled.stdout
    run = _c360(project, env, "run", "--as-of", str(AS_OF))
    assert "no new files under reviews" not in run.stdout + run.stderr

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        raw = con.execute("select rating_id, stars from raw.reviews__ratings order by 1").fetchall()
        staged = con.execute(
            "select count(*), sum(stars) from staging.stg_reviews__ratings"
        ).fetchone()
        audit = con.execute(
            "select sum(extracted) from audit.ingestion_audit where contract_id = 'reviews__ratings'"
        ).fetchone()
    assert sorted(raw) == sorted((r[0], r[2]) for r in rows)
    assert staged == (len(rows), sum(r[2] for r in rows))
    assert audit == (len(rows),)

    after = _project_files(project)
    added = {
        "data_contracts/sources/reviews__ratings.odcs.yaml",
        "dbt_project/models/staging/reviews/stg_reviews__ratings.sql",
        "dbt_project/models/staging/reviews/_reviews__sources.yml",  # generated by compile
    }
    assert set(after) - set(before) == added
    assert {k: v for k, v in after.items() if k not in added} == before
