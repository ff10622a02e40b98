"""The single dbt asset definition: staging → identity → customer_360 → consent → segments.

Keeping ONE @dbt_assets definition makes dbt test failures block downstream steps reliably.
The manifest is prepared by `make manifest` (dbt parse) before the code location loads: importing
this module never runs dbt.
"""

import json
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from orchestration.asset_args import declared_table
from orchestration.dbt_events import NodeTimes, asset_events
from orchestration.dbt_invocations import (
    AS_OF_ENV,
    CODE_DIGEST_ENV,
    RUN_ID_ENV,
    code_digest,
    keep_partial_parse,
    record,
    run_values,
    seed_partial_parse,
    timing,
)
from orchestration.dbt_vars import overrides
from orchestration.defs.resources import C360DbtCli
from orchestration.identity import config as identity_config
from orchestration.paths import c360_home, dbt_project_dir
from orchestration.run_model import OWNER, as_of_from, nightly_partitions
from orchestration.warehouse import (
    is_out_of_memory,
    out_of_memory_message,
    warehouse_pool,
)

dbt_project = DbtProject(project_dir=dbt_project_dir())

# Fail the code location load with a message naming the field, not deep inside a dbt run.
identity_config.load()
identity_config.load_survivorship()

_GROUPS = {
    "staging": "staging",
    "intermediate": "identity",
    # incremental mirrors of staged activity (latest version per key) that marts read
    "activity": "staging",
    "identity": "identity",
    "customer_360": "customer_360",
    "consent": "customer_360",
    "segments": "segments",
    # Campaign outcomes feed lift and KPIs, which the insight group owns.
    "campaigns": "insight",
    "kpi": "insight",
}


_ERASURE = dg.AssetKey(["privacy", "erasure"])  # orchestration/defs/privacy/erasure.py


class C360DbtTranslator(DagsterDbtTranslator):
    """Groups by layer folder, one owner, and the dbt description as the asset description."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = self.get_resource_props(manifest, unique_id)
        if node.get("resource_type") == "source":
            return spec
        folders = node.get("fqn", [])[1:-1]
        # Layer folder decides the group; under marts/ and intermediate/ the subject folder does.
        subject = folders[:1] in (["marts"], ["intermediate"]) and len(folders) > 1
        layer = folders[1] if subject else (folders or [""])[0]
        group = _GROUPS.get(layer, "transform")
        spec = spec.replace_attributes(group_name=group, owners=[OWNER])
        if layer == "staging":
            # the night's erasures run first: nothing downstream of raw sees an erased person
            spec = spec.merge_attributes(deps=[_ERASURE])
        return spec


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=C360DbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    ),
    partitions_def=nightly_partitions,
    pool=warehouse_pool(),
    # One logical as_of per run: a backfill launches one run per day.
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    name="c360_dbt",
)
def c360_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """dbt build for the run's as_of (its partition), in a per-run target folder removed after.

    The as_of and run id reach dbt as env vars, not `--vars`, and the home keeps dbt's saved
    parse between invocations (orchestration/dbt_invocations.py): a night's dbt steps re-parse
    only project files that changed.
    """
    as_of = as_of_from(context).isoformat()
    target = c360_home() / "dbt_runs" / context.run_id
    # Vars only when C360_DBT_VARS sets some: the same every night, so they keep the saved parse.
    variables = overrides()
    # dbt's unit tests check the SQL on fixed rows, so they belong to CI (`make test`,
    # tests/unit/test_dbt_unit_tests.py), not to every night: dbt's own guidance
    # (docs.getdbt.com/docs/build/unit-tests, "When to run unit tests")
    # No manifest.json or run_results.json: Dagster has the manifest, and the node times come
    # from dbt's event stream (orchestration/dbt_events.py).
    args = [
        "build",
        "--no-write-json",
        "--exclude-resource-type",
        "unit_test",
        *(["--vars", json.dumps(variables)] if variables else []),
    ]
    started = time.monotonic()
    try:
        seed_partial_parse(target)
        # the code digest lets an unchanged model keep its table (macros/reusable_table.sql)
        values = {AS_OF_ENV: as_of, RUN_ID_ENV: context.run_id,
                  CODE_DIGEST_ENV: code_digest(dbt_project_dir())}  # fmt: skip
        with run_values(values):
            # a plain DbtCliResource (a test's) runs as it is
            engine_dbt = dbt.for_engine() if isinstance(dbt, C360DbtCli) else dbt
            invocation = engine_dbt.cli(
                args, context=context, target_path=target, raise_on_error=False
            )
        times = NodeTimes()
        yield from asset_events(invocation, times)
        _record_timing(context, target, times, time.monotonic() - started)
        # Exit 0 or 1 (a node failed): dbt parsed the project whole and saved that parse.
        if invocation.process.wait() in (0, 1):
            keep_partial_parse(target)
        error = invocation.get_error()
        if error is not None:
            memory = _out_of_memory_errors(times, str(error))
            if memory:
                raise dg.Failure(
                    description=out_of_memory_message("dbt build", memory[0]),
                    metadata={"nodes that failed": ", ".join(memory[1:]) or "(see dbt log)"},
                ) from error
            raise error
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _record_timing(
    context: dg.AssetExecutionContext, target: Path, times: NodeTimes, wall: float
) -> None:
    """Log and keep (logs/<run_id>.dbt.jsonl) the invocation's wall time, node time and parse."""
    entry = timing(times, target, context.run_id, str(context.op_execution_context.op_handle), wall)
    if entry is None:
        return
    record(entry)
    context.log.info(
        f"dbt invocation: {entry.nodes} nodes in {entry.node_seconds:.1f}s of dbt's own time, "
        f"{entry.wall_seconds:.1f}s in all; {entry.parse} parse"
    )


def _out_of_memory_errors(times: NodeTimes, error_text: str) -> list[str]:
    """[DuckDB's message, failed node ids...] when dbt failed because memory ran out, else []."""
    if not is_out_of_memory(error_text):
        return []
    line = next(ln for ln in error_text.splitlines() if is_out_of_memory(ln))
    return [line, *sorted(times.failed)]


# The identity registry is written by dbt hooks (never by a model, so a full refresh keeps it);
# it is declared here so the graph shows it with its group, owner and description.
identity_registry = declared_table(
    key=["identity_state", "identity_registry"],
    group_name="identity",
    description=(
        "audit.identity_registry: one row per source record ever resolved → its persistent "
        "customer_id. Maintained by the post-hook of int_identity__assignments."
    ),
)

identity_merge_log = declared_table(
    key=["identity_state", "identity_merge_log"],
    group_name="identity",
    description=(
        "audit.identity_merge_log: one row per merge or split of customer ids, with the link that "
        "explains it (rule, identifier, record) and the run. Written by the post-hook of "
        "int_identity__assignments; customer_id_history reads it."
    ),
)

defs = dg.Definitions(assets=[c360_dbt, identity_registry, identity_merge_log])
