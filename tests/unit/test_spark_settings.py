"""dbt's spark target and the Python side's Spark sessions use the same session settings, and
the local Thrift Server keeps its tables where table_files() reads them."""

from pathlib import Path

import yaml

from orchestration.engine import spark
from orchestration.paths import dbt_project_dir


def test_dbt_sessions_get_the_python_sides_settings():
    outputs = yaml.safe_load((dbt_project_dir() / "profiles.yml").read_text())["c360"]["outputs"]
    target = outputs["spark"]
    assert target["method"] == "thrift"
    assert target["server_side_parameters"] == spark.SESSION_SETTINGS


def test_the_local_server_keeps_its_tables_in_the_warehouse_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("C360_SPARK_WAREHOUSE", str(tmp_path / "wh"))
    monkeypatch.setenv("C360_SPARK_DRIVER_MEMORY", "3g")
    settings = spark.server_settings()
    assert settings["spark.sql.warehouse.dir"] == f"{tmp_path}/wh/tables"
    assert settings["spark.driver.memory"] == "3g"
    assert spark.table_files("marts", "customer_360") == Path(
        f"{tmp_path}/wh/tables/marts.db/customer_360"
    )
    assert spark.SESSION_SETTINGS.items() <= settings.items()
    command = spark.server_command(10123)
    assert command[0].endswith("/bin/spark-submit")
    assert "spark.sql.warehouse.dir=" + settings["spark.sql.warehouse.dir"] in command
    assert "hive.server2.thrift.port=10123" in command


def test_dagster_runs_the_dbt_of_spark_venv_on_spark(monkeypatch):
    """dbt-spark lives in .venv-spark: on Spark the dbt resource runs that environment's dbt,
    on the other engines the project's own."""
    import sys

    from orchestration.defs.resources import C360DbtCli
    from orchestration.paths import REPO_ROOT, dbt_project_dir

    dbt = C360DbtCli(
        project_dir=str(dbt_project_dir()),
        profiles_dir=str(dbt_project_dir()),
        dbt_executable=str(Path(sys.executable).parent / "dbt"),
    )
    monkeypatch.setenv("C360_DBT_TARGET", "duckdb")
    assert dbt.for_engine() is dbt
    monkeypatch.setenv("C360_DBT_TARGET", "spark")
    on_spark = dbt.for_engine()
    assert on_spark.dbt_executable == str(REPO_ROOT / ".venv-spark" / "bin" / "dbt")
    assert (on_spark.project_dir, on_spark.profiles_dir) == (dbt.project_dir, dbt.profiles_dir)
