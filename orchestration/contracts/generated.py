"""The files `c360 contracts compile` writes from the contracts: each source's dbt sources YAML
(dbt_sources.py) and customer_360's dbt contract and trait list (customer_360.py). `--check`
(in `make lint`) and `c360 run` refuse while one is stale."""

from __future__ import annotations

from pathlib import Path

from orchestration.contracts import customer_360, dbt_sources


def render_all() -> dict[Path, str]:
    """Every generated file's text, by path."""
    return {**dbt_sources.render_all(), **customer_360.render_all()}


def stale_files(rendered: dict[Path, str] | None = None) -> list[Path]:
    """The generated files missing or different from what the contracts give."""
    rendered = render_all() if rendered is None else rendered
    return [p for p, text in rendered.items() if not p.is_file() or p.read_text() != text]


def compile_all(rendered: dict[Path, str] | None = None) -> list[Path]:
    """Write the stale generated files; return the paths written."""
    rendered = render_all() if rendered is None else rendered
    written = stale_files(rendered)
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered[path])
    return written
