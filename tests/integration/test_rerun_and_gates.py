"""Run model guarantees on their own small homes: idempotent reruns at the same as_of, and a
failing blocking gate that leaves raw, dbt and activation untouched until the data is fixed."""

import datetime as dt
import json

import duckdb
import pytest

from orchestration.contracts.model import all_source_contracts
from orchestration.paths import contracts_dir
from tests.integration.conftest import AS_OF, make_home
from tests.warehouse_digest import table_digest

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="rerun_and_gates")]

# Columns that are run metadata by design (who/when ran), excluded from the idempotency compare.
RUN_METADATA = {
    "_loaded_at", "run_id", "sync_run_id", "recorded_at", "consent_snapshot_at", "published_at",
    "staged_at", "started_at", "finished_at", "duration_seconds",
    "verified_run",  # audit.model_fingerprints: the run that last checked a kept table
    "passed_run",  # audit.test_passes: the run a kept test last ran and passed in
}  # fmt: skip
RUN_LOG_TABLES = {
    ("audit", "ingestion_batches"),
    ("activation", "sync_runs"),
    ("audit", "identity_graph_health"),
    ("audit", "dbt_model_builds"),  # one row per model per dbt invocation: a run log
    ("audit", "clv_fits"),  # one fit record per run
    ("audit", "send_time_evals"),  # one evaluation per run
    # the landing files' stat signatures, a cache of the file system: a file written just before
    # the first run's read gets its signature at the rerun (git's racy-clean rule)
    ("audit", "landing_file_signatures"),
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
            out[f"{schema}.{table}"] = table_digest(con, schema, table, RUN_METADATA)
    return out


def test_two_runs_at_the_same_as_of_leave_every_table_identical(tmp_path, monkeypatch):
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

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

    from demo.generator import generate
    from orchestration.defs.automation import activation_schedule
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch, storage="sqlite")  # the schedule reads the runs
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
    assert len(all_source_contracts()) == len(list(contracts_dir().glob("sources/*.odcs.yaml")))


def _check_descriptions(instance, run_id: str) -> dict[str, str]:
    import dagster as dg

    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = entry.dagster_event.event_specific_data
        out[ev.asset_check_key.to_user_string()] = ev.description or ""
    return out


def test_several_defect_classes_block_one_night_and_publish_once_when_fixed(tmp_path, monkeypatch):
    """Renamed column (shop orders), future timestamps (crm contacts), an export banner the
    loader skips (row accounting, loyalty members) and duplicates (web events) in one night."""
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(300, 7, AS_OF, home.landing, home.truth, progress=None)
    orders = next((home.landing / "shop" / "orders").rglob("*.jsonl"))
    contacts = next((home.landing / "crm" / "contacts").rglob("*.csv"))
    members = next((home.landing / "loyalty" / "members").rglob("*.csv"))
    events = next((home.landing / "web" / "events").rglob("*.jsonl"))
    originals = {p: p.read_text() for p in (orders, contacts, members)}
    orders.write_text(originals[orders].replace('"currency":', '"currency_code":'))
    lines = originals[contacts].splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    at = header.index("updated_at")
    row = lines[1].rstrip("\n").split(",")
    if len(row) == len(header):  # no quoted commas in this row
        row[at] = "2026-12-24T10:00:00Z"
        lines[1] = ",".join(row) + "\n"
    contacts.write_text("".join(lines))
    members.write_text("loyalty export 2026-11-21\n" + originals[members])
    resent = events.with_name("part-00001.jsonl")
    resent.write_text("".join(events.read_text().splitlines(keepends=True)[:400]))

    report = run_nightly(AS_OF, instance=home.instance, log_level="CRITICAL")
    assert not report.success
    why = _check_descriptions(home.instance, report.run_id)
    expected = {
        "staged/shop/orders:meets_contract": ["renamed column", "currency_code"],
        "staged/crm/contacts:meets_contract": ["future timestamps", "updated_at"],
        "staged/loyalty/members:meets_contract": ["row accounting", str(members)],
        "staged/web/events:meets_contract": ["duplicates", "event_id"],
    }
    for check, words in expected.items():
        assert check in report.checks_failed, (check, why.get(check))
        assert all(w in why[check] for w in words), why[check]
    assert "activation/file_drop" not in report.materialized
    assert not any(k.startswith("marts/") for k in report.materialized)
    for key in ("shop/orders", "crm/contacts", "loyalty/members", "web/events"):
        assert key not in report.materialized
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        blocked = con.execute(
            "select count(*) from audit.ingestion_audit where contract_id in "
            "('shop__orders', 'crm__contacts', 'loyalty__members', 'web__events')"
        ).fetchone()[0]
        assert blocked == 0

    for path, text in originals.items():
        path.write_text(text)
    resent.unlink()
    fixed = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert fixed.success, fixed.checks_failed
    assert "activation/file_drop" in fixed.materialized
    assert {c for c in fixed.checks_passed if c.endswith(":published_as_accounted")}
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        rows = con.execute(
            "select contract_id, count(*), sum(extracted), sum(loaded + quarantined + "
            "deduplicated) from audit.ingestion_audit group by 1"
        ).fetchall()
    assert len(rows) == len(all_source_contracts())
    for contract_id, batches, extracted, accounted in rows:
        assert batches == 1 and extracted == accounted, contract_id
