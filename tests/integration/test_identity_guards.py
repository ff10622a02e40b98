"""Over-merge guards on real pipeline runs: junk identifiers and values shared by too many records
link nobody, and every refused link is recorded with its reason."""

import json

import duckdb
import pytest

from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="pipeline")]


def test_junk_and_overshared_identifiers_do_not_merge_people(tmp_path, monkeypatch):
    from orchestration.pipeline import run_nightly
    from orchestration.sources.generator import generate

    home = make_home(tmp_path, monkeypatch)
    generate(400, 9, AS_OF, home.landing, home.truth, progress=None)
    path = next((home.landing / "shop" / "customers").rglob("*.jsonl"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    junk = rows[:5]  # five different people typed the junk address at checkout
    shared = rows[5:25]  # twenty people share the shop's default phone (limit: 8 per value)
    for r in junk:
        r["email"] = "TEST@test.com"  # normalised to the blocklisted test@test.com
    for r in shared:
        r["phone"], r["email"] = "+1 (212) 555-0000", None
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert report.success, report.checks_failed
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        dropped = dict(
            con.execute(
                "select drop_reason, count(*) from intermediate.int_identity__dropped_links group by 1"
            ).fetchall()
        )
        assert dropped.get("blocklist_exact", 0) >= 5
        assert dropped.get("too_many_records_per_value", 0) >= 20
        for group in (junk, shared):
            ids = [r["shop_customer_id"] for r in group]
            merged = con.execute(
                "select count(distinct customer_id) from marts.customer_id_map "
                "where source = 'shop' and source_record_id in (select unnest(?))",
                [ids],
            ).fetchone()[0]
            assert merged == len(ids), "junk or over-shared values must not merge different people"
        edges = con.execute(
            "select count(*) from intermediate.int_identity__edges "
            "where node_key in ('v|email:test@test.com', 'v|phone:+12125550000')"
        ).fetchone()[0]
        assert edges == 0
