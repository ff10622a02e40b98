"""orchestration/asset_args.py: what every Python asset of the code location declares alike
(owner, duckdb pool, nightly partitions, backfill policy, one-line description), and its helpers."""

import warnings

import dagster as dg
import pytest

from orchestration.asset_args import declared_table, keys, nightly_asset
from orchestration.run_model import ONE_DAY_PER_RUN, OWNER, nightly_partitions


@pytest.fixture
def defs(tmp_path, monkeypatch):
    for var in ("C360_WAREHOUSE", "C360_LANDING_DIR", "C360_OUTBOX_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    from orchestration.definitions import defs as load

    return load()


def _python_assets(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """The executable assets written in Python: every one but the dbt build."""
    return [
        a
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition)
        and a.is_executable
        and a.keys
        and a.op.name != "c360_dbt"
    ]


def test_every_python_asset_shares_the_nightly_arguments(defs):
    assets = _python_assets(defs)
    # ingestion (two per contract), identity, insight, privacy, activation
    assert len(assets) > 30
    for a in assets:
        for spec in a.specs:
            assert spec.owners == [OWNER], spec.key
            assert spec.description and "\n" not in spec.description, spec.key
        assert a.op.pool == "duckdb", a.key
        assert a.partitions_def == nightly_partitions, a.key
        assert a.backfill_policy == ONE_DAY_PER_RUN, a.key


def test_every_sync_asset_runs_after_the_audience_marts_and_the_circuit_breaker(defs):
    graph = defs.resolve_asset_graph()
    for key in (["activation", "platform_syncs"], ["activation", "file_drop"]):
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(key)).parent_keys}
        assert {
            "identity_state/graph_health",
            "marts/segment_membership",
            "marts/next_best_action",
            "marts/customer_360",
            "marts/consent_state",
        } <= parents, key


def test_the_docstring_is_the_description_on_one_line():
    @nightly_asset(key=["t", "doc"], group_name="g", sources=None)
    def doc() -> None:
        """marts.t: one row per thing,
        over two lines."""

    (spec,) = doc.specs
    assert spec.description == "marts.t: one row per thing, over two lines."
    assert spec.code_version is None

    @nightly_asset(key=["t", "given"], group_name="g", sources=(__file__,), description="given")
    def given() -> None:
        """not this"""

    (spec,) = given.specs
    assert spec.description == "given" and spec.code_version and len(spec.code_version) == 12


def test_an_asset_without_description_or_docstring_is_refused():
    with pytest.raises(ValueError, match="bare"):

        @nightly_asset(key=["t", "bare"], group_name="g", sources=None)
        def bare() -> None: ...


def test_keys_reads_paths_as_the_ui_writes_them():
    assert keys("marts/customer_360", "staged/crm/contacts") == [
        dg.AssetKey(["marts", "customer_360"]),
        dg.AssetKey(["staged", "crm", "contacts"]),
    ]


def test_declared_table_carries_the_owner_and_the_duckdb_kind():
    spec = declared_table(key=["audit", "t"], group_name="g", description="audit.t: rows.")
    assert (spec.key, spec.group_name, spec.description) == (
        dg.AssetKey(["audit", "t"]),
        "g",
        "audit.t: rows.",
    )
    assert spec.owners == [OWNER] and spec.kinds == {"duckdb"}


def test_declaring_an_asset_is_quiet_about_backfill_policy_and_nothing_else():
    """The beta notice on `backfill_policy` is filtered only while an asset is declared: the
    filter does not stay behind for the rest of the process."""

    def body() -> None:
        """An asset."""

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nightly_asset(key=["quiet_probe"], group_name="probe", sources=None)(body)
        assert not [w for w in caught if issubclass(w.category, dg.BetaWarning)]
        warnings.warn("Parameter `backfill_policy` elsewhere", dg.BetaWarning, stacklevel=1)
    assert [w for w in caught if issubclass(w.category, dg.BetaWarning)]
