"""What c360's Python assets declare alike: `nightly_asset` (owner, pool, partitions, code
version, the description from the function's docstring), the code version itself, `keys`
(asset keys written as paths, for deps) and `declared_table` (a table no step of its own writes).

An asset whose `sources` is None carries no code version (Dagster then treats every
materialization as new code).

A code version is the first 12 hex digits of the sha256 of the source files that decide what
the asset writes: the module defining the asset, the logic module it calls (e.g.
orchestration/insight/clv.py) and, for ingestion, the source's contract. Editing any of them
gives a new version, which Dagster shows as "code version changed" on the asset until it is
materialized again; editing anything else does not. Files are read once, when the code location
loads.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg

from orchestration.run_model import ONE_DAY_PER_RUN, OWNER, nightly_partitions
from orchestration.warehouse import warehouse_pool

Source = ModuleType | Path | str


def _path(source: Source) -> Path:
    if isinstance(source, ModuleType):
        if not source.__file__:
            raise ValueError(f"module {source.__name__} has no source file")
        return Path(source.__file__)
    return Path(source)


def code_version(*sources: Source) -> str:
    """The code version of an asset whose output is decided by `sources` (modules or files)."""
    if not sources:
        raise ValueError("code_version needs at least one source file")
    digest = hashlib.sha256()
    for source in sources:
        path = _path(source)
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def nightly_asset(
    *,
    key: dg.AssetKey | list[str],
    group_name: str,
    sources: tuple[Source, ...] | None,
    description: str | None = None,
    kinds: set[str] | frozenset[str] = frozenset({"duckdb", "python"}),
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """`dg.asset` with what every nightly Python asset shares: the owner, the `duckdb` pool (one
    writer), the nightly partitions one day per run, and the code version of `sources` (none
    when `sources` is None). The description is `description`, else the function's docstring
    on one line. Other arguments (deps, check_specs, tags, metadata) pass through."""

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        text = description or " ".join((fn.__doc__ or "").split())
        if not text:
            raise ValueError(f"asset {fn.__name__}: give a description or a docstring")
        with warnings.catch_warnings():
            # one day per run is the nightly's design, not an experiment: Dagster's beta notice
            # on `backfill_policy` would otherwise print once per asset wherever defs/ modules
            # are imported directly (the benches); every other warning still shows
            warnings.filterwarnings(
                "ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning
            )
            return dg.asset(
                key=key,
                group_name=group_name,
                owners=[OWNER],
                kinds=set(kinds),
                pool=warehouse_pool(),
                partitions_def=nightly_partitions,
                backfill_policy=ONE_DAY_PER_RUN,
                code_version=None if sources is None else code_version(*sources),
                description=text,
                **kwargs,
            )(fn)

    return decorate


def keys(*paths: str) -> list[dg.AssetKey]:
    """Asset keys from their paths as the UI writes them: `keys("marts/customer_360")`."""
    return [dg.AssetKey.from_user_string(path) for path in paths]


def declared_table(*, key: list[str], group_name: str, description: str) -> dg.AssetSpec:
    """A DuckDB table the graph shows that no step of its own materializes (dbt hooks or other
    assets write it), with the owner every asset carries."""
    return dg.AssetSpec(
        key=key, group_name=group_name, owners=[OWNER], kinds={"duckdb"}, description=description
    )
