"""`c360 run --full-refresh` reaches dbt as the env var dbt's own `--full-refresh` option reads
(docs/incremental.md); without the flag the run sets nothing."""

from __future__ import annotations

import os

from orchestration.cli import build_parser
from orchestration.dbt_invocations import FULL_REFRESH_ENV, full_refresh_values, run_values


def test_the_env_var_is_the_one_dbt_build_reads_for_full_refresh() -> None:
    from dbt.cli.main import cli

    [option] = [p for p in cli.commands["build"].params if p.name == "full_refresh"]
    assert FULL_REFRESH_ENV in option.envvar
    assert full_refresh_values(True) == {FULL_REFRESH_ENV: "true"}
    assert full_refresh_values(False) == {}


def test_c360_run_takes_full_refresh_and_sets_it_only_for_the_run(monkeypatch) -> None:
    monkeypatch.delenv(FULL_REFRESH_ENV, raising=False)
    assert build_parser().parse_args(["run", "--full-refresh"]).full_refresh is True
    args = build_parser().parse_args(["run"])
    assert args.full_refresh is False
    with run_values(full_refresh_values(True)):
        assert os.environ[FULL_REFRESH_ENV] == "true"
    assert FULL_REFRESH_ENV not in os.environ
