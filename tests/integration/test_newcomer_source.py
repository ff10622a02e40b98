"""A newcomer adds a source entity with a trait and a segment on it (issue 18, "done when"): in a
temporary copy of the project, a contract, a staging model, the trait's model and properties
file, a segment YAML and landing files are all they write. `c360 contracts compile` and
`c360 segments compile` write the generated files, and a small nightly ingests, stages, joins the
trait onto customer_360 and fills the segment — and no other file of the project changes."""

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


TRAIT_MODEL = """{#- Review trait: one row per customer who rated, their mean stars and ratings given. -#}
with crm_ids as (
    select
        customer_id,
        source_record_id as crm_contact_id
    from {{ ref('customer_id_map') }}
    where source = 'crm'
)

select
    crm_ids.customer_id,
    cast(avg(ratings.stars) as double) as average_rating,
    cast(count(*) as bigint) as ratings_given
from {{ ref('stg_reviews__ratings') }} as ratings
inner join crm_ids on ratings.crm_contact_id = crm_ids.crm_contact_id
group by crm_ids.customer_id
"""

TRAIT_PROPERTIES = """version: 2

models:
  - name: trait__reviews
    description: One row per customer who rated a product.
    columns:
      - name: customer_id
        data_type: varchar
        description: Persistent c360 person id.
        data_tests: [unique, not_null]
      - name: average_rating
        data_type: double
        description: Mean stars of the customer's ratings.
        meta: {classification: internal}
      - name: ratings_given
        data_type: bigint
        description: Ratings the customer left.
        meta: {classification: internal, default: 0}
"""

SEGMENT = """name: happy_reviewers
description: Customers whose ratings average four stars or more.
all:
  - trait: average_rating
    gte: 4
channels: [email]
"""
# what the two compile commands write (marked generated, rewritten on every compile)
GENERATED = (
    "dbt_project/models/staging/reviews/_reviews__sources.yml",
    "dbt_project/models/marts/customer_360/_customer_360__contract.yml",
    "dbt_project/macros/generated/trait_models.sql",
    "dbt_project/models/marts/segments/generated/",
    "dbt_project/models/exposures/_syncs.yml",
)


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

    traits = project / "dbt_project/models/marts/customer_360/traits"
    (traits / "trait__reviews.sql").write_text(TRAIT_MODEL)
    (traits / "trait__reviews.yml").write_text(TRAIT_PROPERTIES)
    (project / "dbt_project/segments/happy_reviewers.yml").write_text(SEGMENT)

    compiled = _c360(project, env, "contracts", "compile")
    assert "_reviews__sources.yml" in compiled.stdout
    assert "_customer_360__contract.yml" in compiled.stdout
    _c360(project, env, "segments", "compile")
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
        customer_of = dict(
            con.execute(
                "select source_record_id, customer_id from marts.customer_id_map "
                "where source = 'crm'"
            ).fetchall()
        )
        traits_got = con.execute(
            "select customer_id, average_rating, ratings_given, is_erased from marts.customer_360"
        ).fetchall()
        members = con.execute(
            "select customer_id from marts.segment_membership "
            "where segment_name = 'happy_reviewers' and as_of = ?",
            [AS_OF],
        ).fetchall()
    assert sorted(raw) == sorted((r[0], r[2]) for r in rows)
    assert staged == (len(rows), sum(r[2] for r in rows))
    assert audit == (len(rows),)

    # the trait: each customer's mean stars over their contacts' ratings; 0 ratings elsewhere
    stars: dict[str, list[int]] = {}
    for _, contact, given, _ in rows:
        stars.setdefault(customer_of[contact], []).append(given)
    want = {cid: (sum(s) / len(s), len(s)) for cid, s in stars.items()}
    got = {cid: (avg, n) for cid, avg, n, _ in traits_got if avg is not None}
    assert got == want
    assert all(n == 0 for cid, avg, n, _ in traits_got if cid not in want)
    # the segment on it
    erased = {cid for cid, _, _, is_erased in traits_got if is_erased}
    happy = {cid for cid, (avg, _) in want.items() if avg >= 4} - erased
    assert happy and {m[0] for m in members} == happy

    after = _project_files(project)
    written = {
        "data_contracts/sources/reviews__ratings.odcs.yaml",
        "dbt_project/models/staging/reviews/stg_reviews__ratings.sql",
        "dbt_project/models/marts/customer_360/traits/trait__reviews.sql",
        "dbt_project/models/marts/customer_360/traits/trait__reviews.yml",
        "dbt_project/segments/happy_reviewers.yml",
    }
    changed = {k for k in set(after) | set(before) if after.get(k) != before.get(k)}
    assert written <= changed
    assert all(path.startswith(GENERATED) for path in changed - written), changed - written
