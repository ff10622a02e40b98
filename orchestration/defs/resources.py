"""Resources: the warehouse, dbt and the file-drop destination — configured only from env vars."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging import version

from orchestration import dbt_warm
from orchestration.engine import Connection
from orchestration.paths import REPO_ROOT, dbt_project_dir
from orchestration.run_guard import stamp_run
from orchestration.warehouse import engine, server_warehouse, warehouse


class Warehouse(dg.ConfigurableResource):
    """The warehouse (the embedded DuckDB file at `path`, or Postgres when C360_DBT_TARGET is
    postgres) and the landing folder it ingests from."""

    path: str
    landing_dir: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every run that opens the warehouse names its process, so a killed run can be told
        # from a live one and released (orchestration/run_guard.py).
        if context.instance is not None and context.dagster_run is not None:
            stamp_run(context.instance, context.dagster_run.run_id)

    @contextmanager
    def connection(self, read_only: bool = False) -> Iterator[Connection]:
        """A session on the warehouse engine (warehouse.engine()): the DuckDB file at `path`, or
        a server engine's (Postgres, Spark) from the env vars dbt's profile reads. Closed on exit; on DuckDB an
        out-of-memory error is raised naming C360_DUCKDB_MEMORY_LIMIT."""
        if engine() != "duckdb":
            with server_warehouse(read_only=read_only) as con:
                yield con
            return
        with warehouse(Path(self.path), read_only=read_only) as con:
            yield con


class C360DbtCli(DbtCliResource):
    """dagster-dbt's dbt resource without two start-up costs per step that c360 does not use.

    * The dbt version comes from the installed dbt-core package: `dbt_executable` is this
      environment's own dbt, so asking it (`dbt --version`, a whole dbt process) says the same.
    * No dbt adapter is opened inside the Dagster process: it serves dagster-dbt's row-count
      and column-metadata fetches, and dbt counts the rows itself (orchestration/dbt_events.py).
    * dbt's own start-up is paid once by the warm server (orchestration/dbt_warm.py), which the
      resource's setup starts when a run begins.
    """

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # In-process runs set their resources up when they start: the warm server imports dbt
        # while the first steps (ingestion) work, so the first dbt step does not pay it either
        # (orchestration/dbt_warm.py; a no-op when warm dbt is off or a server answers).
        super().setup_for_execution(context)
        if Path(self.for_engine().dbt_executable).name == "c360-dbt":
            dbt_warm.prewarm()

    def for_engine(self) -> C360DbtCli:
        """This resource for the warehouse engine of now (engine()): on Spark with .venv-spark's
        dbt (`make spark`), the environment that has dbt-spark; otherwise itself."""
        if engine() != "spark":
            return self
        return C360DbtCli(
            project_dir=self.project_dir,
            profiles_dir=self.profiles_dir,
            dbt_executable=str(REPO_ROOT / ".venv-spark" / "bin" / "dbt"),
        )

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        # the adapter dagster-dbt would open here serves only fetches c360 does not use
        return None


class FileDropDestination(dg.ConfigurableResource):
    """Folder (local path) where file-drop syncs write one audience file per sync and as_of."""

    base_dir: str


defs = dg.Definitions(
    resources={
        "warehouse": Warehouse(
            path=dg.EnvVar("C360_WAREHOUSE"), landing_dir=dg.EnvVar("C360_LANDING_DIR")
        ),
        "dbt": C360DbtCli(
            # The dbt of this environment, not whatever is first on PATH, through its warm
            # server (orchestration/dbt_warm.py); on Spark, for_engine() swaps in .venv-spark's
            dbt_executable=dbt_warm.executable(),
            project_dir=str(dbt_project_dir()),
            profiles_dir=str(dbt_project_dir()),
        ),
        "file_drop": FileDropDestination(base_dir=dg.EnvVar("C360_OUTBOX_DIR")),
    }
)
