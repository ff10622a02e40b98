"""A trait is its model and its properties file under models/marts/customer_360/traits/:
`c360 contracts compile` adds its columns to customer_360's enforced contract and join list, and a
malformed or clashing properties file is refused with the file, the column and what to write."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestration.contracts import customer_360, generated
from orchestration.contracts.model import ContractError
from orchestration.paths import dbt_project_dir

RATING_YML = """version: 2
models:
  - name: trait__rating
    description: One row per customer who rated.
    columns:
      - {name: customer_id, data_type: varchar, description: Persistent c360 person id.}
      - name: average_rating
        data_type: double
        description: Mean stars given.
        meta: {classification: internal}
      - name: rated_products
        data_type: bigint
        description: Products rated.
        meta: {classification: sensitive, default: 0}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the customer_360 models and macros; the compile writes into it."""
    dbt = tmp_path / "dbt_project"
    shutil.copytree(
        dbt_project_dir() / "models/marts/customer_360", dbt / "models/marts/customer_360"
    )
    shutil.copytree(dbt_project_dir() / "macros/generated", dbt / "macros/generated")
    monkeypatch.setattr(customer_360, "dbt_project_dir", lambda: dbt)
    cached = (
        customer_360.column_names,
        customer_360.column_descriptions,
        customer_360.pii_column_names,
    )
    for fn in cached:  # computed from the real project by earlier tests
        fn.cache_clear()
    yield dbt
    for fn in cached:  # nor may the copy's columns leak into later tests
        fn.cache_clear()


def _add_trait(dbt: Path, yml: str = RATING_YML, name: str = "trait__rating") -> Path:
    traits = dbt / "models/marts/customer_360/traits"
    (traits / f"{name}.sql").write_text("select customer_id, 1.0 as average_rating")
    path = traits / f"{name}.yml"
    path.write_text(yml)
    return path


def test_a_new_trait_reaches_the_contract_and_the_join_list_in_name_order(project):
    assert generated.stale_files(customer_360.render_all()) == []
    _add_trait(project)
    rendered = customer_360.render_all()
    assert sorted(generated.stale_files(rendered)) == sorted(rendered)
    (model,) = yaml.safe_load(rendered[customer_360.contract_yml_path()])["models"]
    names = [c["name"] for c in model["columns"]]
    core = [c.name for c in customer_360.core_columns()]
    assert names[: len(core)] == core
    # trait__rating sorts before trait__web_activity
    assert names[len(core) :] == [
        "average_rating", "rated_products", "web_sessions_30d", "cart_adds_30d"
    ]  # fmt: skip
    rating = next(c for c in model["columns"] if c["name"] == "average_rating")
    assert rating == {
        "name": "average_rating",
        "data_type": "double",
        "description": "Mean stars given.",
    }
    macro = rendered[customer_360.trait_macro_path()]
    assert '"trait__rating"' in macro and '"default": "0"' in macro
    assert macro.index('"trait__rating"') < macro.index('"trait__web_activity"')
    assert "rated_products" in customer_360.pii_column_names()
    assert "average_rating" not in customer_360.pii_column_names()
    assert generated.compile_all(rendered) and generated.stale_files(rendered) == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda y: y.replace("average_rating", "lifetime_revenue"), "already published by"),
        (lambda y: y.replace("meta: {classification: internal}", "meta: {}"), "classification"),
        (lambda y: y.replace("default: 0", "default: 'drop table x'"), "meta.default"),
        (lambda y: y.replace("name: trait__rating", "name: trait__other"), "the file's name"),
        (lambda y: y.replace("{name: customer_id,", "{name: person_id,"), "customer_id"),
        (lambda y: y.replace("        data_type: double\n", ""), "data_type"),
    ],
    ids=["clash", "classification", "default", "model-name", "customer-id", "data-type"],
)
def test_a_bad_trait_file_is_refused_naming_file_and_field(project, edit, message):
    path = _add_trait(project, edit(RATING_YML))
    with pytest.raises(ContractError) as err:
        customer_360.render_all()
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_properties_file_without_its_model_is_refused(project):
    path = _add_trait(project)
    path.with_suffix(".sql").unlink()
    with pytest.raises(ContractError, match=r"no model file trait__rating\.sql"):
        customer_360.render_all()
