"""The Python side opens the local Spark warehouse with the settings of the profile's spark target,
so it sees the tables dbt built (the same folder, metastore, time zone and literal rules)."""

from pathlib import Path

import jinja2
import pytest
import yaml

from orchestration.engine.spark import session_settings, table_files
from orchestration.paths import dbt_project_dir


def _profile_parameters(env: dict[str, str]) -> dict[str, str]:
    spark = yaml.safe_load((dbt_project_dir() / "profiles.yml").read_text())["c360"]["outputs"][
        "spark"
    ]
    assert spark["method"] == "session"

    def env_var(name: str, default: str | None = None) -> str:
        return env.get(name, default)

    render = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return {
        name: render.from_string(str(value)).render(env_var=env_var)
        for name, value in spark["server_side_parameters"].items()
    }


@pytest.mark.parametrize(
    "env",
    [
        {"C360_HOME": "/srv/c360"},
        {"C360_HOME": "/srv/c360", "C360_SPARK_WAREHOUSE": "/data/spark", "C360_SPARK_MASTER": "local[4]",
         "C360_SPARK_DRIVER_MEMORY": "6g", "C360_SPARK_SHUFFLE_PARTITIONS": "16"},
    ],
)  # fmt: skip
def test_python_session_settings_are_the_profiles(env, monkeypatch):
    for name in ("C360_SPARK_WAREHOUSE", "C360_SPARK_MASTER", "C360_SPARK_DRIVER_MEMORY",
                 "C360_SPARK_SHUFFLE_PARTITIONS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert session_settings() == _profile_parameters(env)
    home = Path(env.get("C360_SPARK_WAREHOUSE", "/srv/c360/spark"))
    assert table_files("marts", "customer_360") == home / "tables" / "marts.db" / "customer_360"
