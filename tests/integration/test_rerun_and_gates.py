"""Run model guarantees on their own small homes: idempotent reruns at the same as_of, and a
failing blocking gate that leaves raw, dbt and activation untouched until the data is fixed."""

import datetime as dt
import hashlib
import json

import duckdb
import pytest

from orchestration.contracts.model import all_source_contracts
from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]

# Columns that are run metadata by design (who/when ran), excluded from the idempotency compare.
RUN_METADATA = {
    "_loaded_at", "run_id", "sync_run_id", "recorded_at", "consent_snapshot_at", "published_at",
    "staged_at", "started_at", "finished_at", "duration_seconds",
}  # fmt: skip
RUN_LOG_TABLES = {
    ("audit", "ingestion_batches"),
    ("activation", "sync_runs"),
    ("audit", "identity_graph_health"),
}


def _fingerprint(path) -> dict[str, str]:
    """Hash of every table's content (order-independent), run metadata columns excluded."""
    out = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('raw','quarantine','intermediate','marts','activation','audit') "
            "and table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in tables:
            if (schema, table) in RUN_LOG_TABLES:
                continue
            cols = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_schema = ? "
                    "and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
                if r[0] not in RUN_METADATA
            ]
            select = ", ".join(f'cast("{c}" as varchar)' for c in cols)
            rows = sorted(
                json.dumps(r, default=str)
                for r in con.execute(f"select {select} from {schema}.{table}").fetchall()
            )
            out[f"{schema}.{table}"] = (
                hashlib.sha256("\n".join(rows).encode()).hexdigest() + f":{len(rows)}"
            )
    return out


def test_two_runs_at_the_same_as_of_leave_every_table_identical(tmp_path, monkeypatch):
    from orchestration.pipeline import run_nightly
    from orchestration.sources.generator import generate

    home = make_home(tmp_path, monkeypatch)
    generate(300, 5, AS_OF, home.landing, home.truth, progress=None)
    first = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert first.success
    before = _fingerprint(home.warehouse)
    second = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert second.success
    after = _fingerprint(home.warehouse)
    assert before.keys() == after.keys()
    changed = [t for t in before if before[t] != after[t]]
    assert not changed, f"tables changed by a rerun at the same as_of: {changed}"
    assert int(before["marts.customer_360"].split(":")[1]) > 0


def test_failing_gate_blocks_publish_dbt_and_activation_until_fixed(tmp_path, monkeypatch):
    import dagster as dg

    from orchestration.defs.automation import activation_schedule
    from orchestration.pipeline import run_nightly
    from orchestration.sources.generator import generate

    home = make_home(tmp_path, monkeypatch)
    generate(300, 6, AS_OF, home.landing, home.truth, progress=None)
    # Schema drift: the shop orders file loses its `currency` column.
    orders = next((home.landing / "shop" / "orders").rglob("*.jsonl"))
    original = orders.read_text()
    broken = [json.loads(line) for line in original.splitlines() if line.strip()]
    for row in broken:
        row.pop("currency")
    orders.write_text("".join(json.dumps(r) + "\n" for r in broken))

    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert not report.success
    assert "staged/shop/orders:meets_contract" in report.checks_failed
    assert "shop/orders" not in report.materialized, "a blocked batch must not be published"
    assert "activation/file_drop" not in report.materialized
    assert not any(k.startswith("marts/") for k in report.materialized)
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw.shop__orders").fetchone()[0] == 0
        published = con.execute(
            "select count(*) from audit.ingestion_audit where contract_id = 'shop__orders'"
        ).fetchone()[0]
        assert published == 0
        has_history = con.execute(
            "select count(*) from information_schema.tables where table_name = 'contact_history'"
        ).fetchone()[0]
        assert (
            has_history == 0
            or con.execute("select count(*) from activation.contact_history").fetchone()[0] == 0
        )

    # the activation schedule finds the last nightly unhealthy and skips, naming the check
    skipped = activation_schedule(dg.build_schedule_context(instance=home.instance))
    assert isinstance(skipped, dg.SkipReason)
    assert "staged/shop/orders:meets_contract" in skipped.skip_message

    # Fix the data: the batch lands exactly once, and the night completes.
    orders.write_text(original)
    fixed = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert fixed.success, fixed.checks_failed
    assert "activation/file_drop" in fixed.materialized
    request = activation_schedule(dg.build_schedule_context(instance=home.instance))
    assert isinstance(request, dg.RunRequest) and request.partition_key == AS_OF.isoformat()
    again = run_nightly(AS_OF + dt.timedelta(days=0), instance=home.instance, log_level="WARNING")
    assert again.success
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        batches = con.execute(
            "select count(*), sum(extracted) from audit.ingestion_audit where contract_id = 'shop__orders'"
        ).fetchone()
        assert batches[0] == 1
        assert batches[1] == len([ln for ln in original.splitlines() if ln.strip()])
    assert len(all_source_contracts()) == 11
