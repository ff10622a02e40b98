"""The project's dbt macros rendered by Jinja without starting dbt, as dbt renders them on one
engine: `adapter.dispatch(name)` picks `<engine>__name`, else `default__name`, and `return(x)`
is the value itself. For code and tests that need a macro's SQL in milliseconds (the segment
renderer, the macro-versus-Python tests), where `dbt compile` costs seconds.

Grain: one module of the named macro files plus the engine-difference macros (engine_sql.sql,
statements.sql) that the others call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

import jinja2

from orchestration.paths import dbt_project_dir

# the macros every other file may call (types, regex and statement differences between engines)
SHARED = ("engine_sql", "statements")


class _Adapter:
    """The part of dbt's `adapter` the macros use: dispatch by engine (and of `target`, its
    type, the engine's name)."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.module: Any = None

    def dispatch(self, name: str, macro_namespace: str | None = None) -> Any:
        for prefix in (self.engine, "default"):
            macro = getattr(self.module, f"{prefix}__{name}", None)
            if macro is not None:
                return macro
        raise LookupError(f"no {self.engine}__{name} or default__{name} in the project's macros")


def macro_source(name: str) -> str:
    """The text of dbt_project/macros/<name>.sql."""
    return (dbt_project_dir() / "macros" / f"{name}.sql").read_text()


def project_macros(
    files: Iterable[str],
    engine: str = "duckdb",
    context: Mapping[str, Any] | None = None,
    env: jinja2.Environment | None = None,
) -> Any:
    """One Jinja module of the macros in `files` (names under dbt_project/macros, no suffix)
    and the shared ones, rendering for `engine`; `context` adds what dbt would provide (this,
    ref, as_of_date, …)."""
    env = env or jinja2.Environment(extensions=["jinja2.ext.do"])
    names = list(dict.fromkeys([*files, *SHARED]))
    adapter = _Adapter(engine)
    module = _compiled(env, "\n".join(macro_source(n) for n in names)).make_module(
        {
            "adapter": adapter,
            "target": SimpleNamespace(type=engine),
            "return": lambda value: value,
            **(context or {}),
        }
    )
    adapter.module = module
    return module


# Compiled macro files per environment kind and source: compiling is what costs (~80 ms for the
# segment macros), and a caller that renders many statements asks for the same files each time.
_TEMPLATES: dict[tuple[Any, ...], jinja2.Template] = {}


def _compiled(env: jinja2.Environment, source: str) -> jinja2.Template:
    """`source` compiled by `env`, or by an earlier environment of the same kind (class,
    undefined, autoescape, extensions: what decides how a template compiles and runs)."""
    key = (type(env), env.undefined, env.autoescape, tuple(sorted(env.extensions)), source)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _TEMPLATES[key] = env.from_string(source)
    return template
