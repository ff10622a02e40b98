"""The nightly job with the CRM and the shop in live mode (real Postgres, real shop API): the
staged assets extract, the contract gates judge, raw is published under the same asset keys as
file mode, dbt and activation run; a second run at the same as_of changes no table; a soft delete
in the CRM then reaches raw and stg_crm__contacts."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest

from demo.live_crm import load_crm
from demo.live_shop import ShopApiServer, load_landing
from orchestration.contracts.model import source_contract
from orchestration.extract.live import extract_to_landing
from orchestration.ingest.wap import publish_batch, stage_batch
from orchestration.warehouse import connect
from tests.integration.conftest import AS_OF, make_home
from tests.integration.test_rerun_and_gates import _fingerprint

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="postgres")]


def test_nightly_in_live_mode_publishes_and_reruns_idempotently(tmp_path, pg_server, monkeypatch):
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path / "home", monkeypatch)
    generated = tmp_path / "generated" / "landing"
    generate(300, 8, AS_OF, generated, tmp_path / "generated" / "truth", progress=None)
    # file mode for the other sources; the CRM and the shop only exist as live systems
    shutil.copytree(generated, home.landing)
    for source in ("crm", "shop"):
        shutil.rmtree(home.landing / source)
    db = pg_server.create_database("crm_nightly")
    load_crm(db.dsn, generated)
    with ShopApiServer(load_landing(generated), token="t0k", rate_limit_every=7) as server:
        for key, value in {
            "C360_CRM_MODE": "live",
            "C360_CRM_DSN": db.dsn,
            "C360_SHOP_MODE": "live",
            "C360_SHOP_API_URL": server.url,
            "C360_SHOP_API_TOKEN": "t0k",
            "C360_SHOP_PAGE_SIZE": "250",
        }.items():
            monkeypatch.setenv(key, value)
        first = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
        assert first.success, first.checks_failed
        for key in ("crm/contacts", "crm/accounts", "shop/orders", "shop/order_lines"):
            assert key in first.materialized
        assert "activation/file_drop" in first.materialized
        before = _fingerprint(home.warehouse)
        second = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
        assert second.success, second.checks_failed
        assert any(r.status == 429 for r in server.requests)
    after = _fingerprint(home.warehouse)
    changed = [t for t in before if before[t] != after[t]]
    assert not changed, f"tables changed by a live rerun at the same as_of: {changed}"
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        raw = con.execute("select count(*) from raw.crm__contacts").fetchone()[0]
        in_pg = len(load_landing(generated).orders)
        orders = con.execute(
            "select count(*) + (select count(*) from quarantine.shop__orders) from raw.shop__orders"
        ).fetchone()[0]
        # the night's erasures removed the erased people's orders after they were loaded
        orders += con.execute(
            "select coalesce(sum(cast(p ->> '$.rows' as integer)), 0) from "
            "(select unnest(cast(places as json[])) as p from audit.erasure_receipts) "
            "where p ->> '$.place' in ('raw.shop__orders', 'quarantine.shop__orders')"
        ).fetchone()[0]
        modes = con.execute(
            "select distinct outcome ->> '$.extraction.contract_id' from audit.ingestion_batches "
            "where contract_id like 'crm%' or contract_id like 'shop%'"
        ).fetchall()
    assert raw > 0 and orders == in_pg
    assert None not in {m[0] for m in modes}  # every crm/shop batch came from live extraction

    # A soft delete in the CRM reaches raw and the staging model dbt built (a view over raw).
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        contact_id, cursor = con.execute(
            "select (select min(crm_contact_id) from staging.stg_crm__contacts "
            "where not is_deleted), (select max(updated_at) from raw.crm__contacts)"
        ).fetchone()
    with db.cursor() as cur:
        cur.execute(
            "update contacts set is_deleted = true, updated_at = %s where contact_id = %s",
            [cursor.replace(tzinfo=dt.UTC), contact_id],
        )
    contract = source_contract("crm__contacts")
    con = connect(home.warehouse)
    try:
        extraction = extract_to_landing(con, contract, home.landing, AS_OF).as_metadata()
        batch = stage_batch(con, contract, home.landing, AS_OF, "soft", extraction=extraction)
        assert (batch.loaded, batch.quarantined) == (1, 0)
        assert publish_batch(con, contract, batch, "soft", home.landing)
        deleted = con.execute(
            "select is_deleted from staging.stg_crm__contacts where crm_contact_id = ?",
            [contact_id],
        ).fetchall()
    finally:
        con.close()
    assert deleted == [(True,)]
