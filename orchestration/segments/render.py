"""Render compiled segment SQL (and the int_segments__* models) as dbt renders it on DuckDB, without
starting dbt: `ref(name)` is whatever relation the caller maps it to, and the helpers are the
project's own duckdb__ macros (macros/segments.sql, normalize.sql, localized_activity.sql). Used by
the segment CLI, the segment benchmark and the tests that run compiled SQL directly.

Both environments are sandboxed (ImmutableSandboxedEnvironment: no attribute walks to Python
internals, no mutation) with autoescape off and StrictUndefined. Compiled SQL carries no Jinja
from segment YAML (model.py refuses `{{`, `{%` and `{#` in every value), so what is rendered here
is the compiler's and the project's own macros; the sandbox is the second wall, not the first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from orchestration.dbt_macros import project_macros


def _environment() -> jinja2.Environment:
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, extensions=["jinja2.ext.do"]
    )


@cache
def _macros(engine: str) -> Any:
    return project_macros(("segments", "normalize"), engine, env=_environment())


def render_duckdb(
    sql: str, ref: Callable[[str], str], as_of: dt.date, dialect: str = "duckdb"
) -> str:
    """`sql` with its Jinja rendered for DuckDB at `as_of` (config() calls render to nothing).
    With `dialect` "postgres" or "spark", the engine-specific helpers are the project's macros
    dbt renders on that engine (default__ or spark__); the rest stays DuckDB's SQL, for
    engine.transpile."""
    engine = dialect if dialect in ("postgres", "spark") else "duckdb"
    macros = _macros(engine)
    env = _environment()
    # the macros that read a model themselves see the caller's ref()
    with_refs = project_macros(("segments",), engine, {"ref": ref}, env=env)

    def as_of_date() -> str:
        return f"cast('{as_of.isoformat()}' as date)"

    activity = project_macros(
        ("localized_activity",),
        engine,
        {
            "local_date": macros.local_date,
            "resolved_customer_time_zones": with_refs.resolved_customer_time_zones,
            "as_of_date": as_of_date,
        },
        env=env,
    )
    return env.from_string(sql).render(
        ref=ref,
        resolved_customer_time_zones=with_refs.resolved_customer_time_zones,
        localized_activity=activity.localized_activity,
        config=lambda **kwargs: "",
        as_of_date=as_of_date,
        as_of_end=lambda: f"cast('{as_of.isoformat()} 23:59:59' as timestamp)",
        local_date=macros.local_date,
        json_text=macros.json_text,
        json_number=macros.json_number,
        hash_bucket=macros.hash_bucket,
    )
