"""Shared test fixtures. Tiers (budgets documented in README): unit (seconds), integration
(one ~2k-customer pipeline per session), e2e (real Postgres, browser)."""

import os
import shutil

import pytest

from tests import tmpfs

# Tests never read a developer's .c360 home: every fixture sets its own.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

# pytest puts the running test's id in the env var PYTEST_CURRENT_TEST, and Linux refuses to
# start any process whose environment holds one string over 128 KiB ("Argument list too long").
# A long parametrize id (a test's whole input) would break every subprocess started meanwhile.
MAX_TEST_ID = 2000


_TMPFS_BASETEMP = "_c360_tmpfs_basetemp"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Point pytest's base temporary folder at the tmpfs when there is one with room
    (tests/tmpfs.py; the controller only: xdist's workers get a folder under the controller's).
    `C360_TEST_TMP=disk` (or `--basetemp`) keeps pytest's own folder, which also keeps the last
    runs for a look after."""
    if (
        config.option.basetemp
        or hasattr(config, "workerinput")
        or os.environ.get("C360_TEST_TMP") == "disk"
        or not tmpfs.usable()
    ):
        return
    for gone in tmpfs.stale():  # runs that were killed: their unconfigure never ran
        shutil.rmtree(gone, ignore_errors=True)
    basetemp = tmpfs.basetemp()
    config.option.basetemp = str(basetemp)
    setattr(config, _TMPFS_BASETEMP, basetemp)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give the tmpfs its memory back."""
    basetemp = getattr(config, _TMPFS_BASETEMP, None)
    if basetemp is not None:
        shutil.rmtree(basetemp, ignore_errors=True)


def _groups(item: pytest.Item) -> set[str]:
    return {
        str(m.args[0] if m.args else m.kwargs.get("name", "default"))
        for m in item.iter_markers("xdist_group")
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    long = [item.nodeid[:120] for item in items if len(item.nodeid) > MAX_TEST_ID]
    if long:
        raise pytest.UsageError(
            f"{len(long)} test ids longer than {MAX_TEST_ID} characters (give parametrize short "
            f"ids): {long[0]}…"
        )
    # the shared 2k run (tests/integration/conftest.py) is built once per worker that needs it
    stray = [
        item.nodeid
        for item in items
        if "pipeline" in getattr(item, "fixturenames", ()) and "pipeline" not in _groups(item)
    ]
    if stray:
        raise pytest.UsageError(
            f"{stray[0]} reads the shared `pipeline` run but is not in "
            'xdist_group(name="pipeline"): under `make test` it would build the run again'
        )
