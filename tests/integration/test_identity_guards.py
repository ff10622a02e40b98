"""Over-merge guards on real pipeline runs: junk identifiers and values shared by too many records
link nobody, and every refused link is recorded with its reason."""

import json

import duckdb
import pytest

from orchestration.identity import refusals
from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="identity_guards")]


def test_junk_and_overshared_identifiers_do_not_merge_people(tmp_path, monkeypatch):
    """Also, in the same run: a shop account with a work email and another phone joins its
    owner's CRM contact through name and address written differently (name_address); another,
    without a default address, through the address its order was shipped to, while its gift
    order to someone else's address links it to nobody there; and a parent and a child of one
    name at one address (two birth dates) are not merged by it."""
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

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
    ts = f"{AS_OF.isoformat()}T08:00:00Z"
    work_account = {key: None for key in rows[0]} | {
        "shop_customer_id": "S9200001", "email": "qz@corp.example.com",
        "phone": "+1 415 555 0999", "first_name": "QUINN", "last_name": "Zephyrine",
        "country_code": "US", "address_line1": "77 JUNIPER  CT.", "city": "Oakland",
        "postal_code": "94601", "created_at": ts, "updated_at": ts,
    }  # fmt: skip
    no_default = work_account | {
        "shop_customer_id": "S9200003", "email": "rq@corp.example.com", "phone": None,
        "first_name": "Rowan", "last_name": "Quillfeather", "address_line1": None,
        "city": None, "postal_code": None,
    }  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, work_account, no_default]))
    orders = next((home.landing / "shop" / "orders").rglob("*.jsonl"))
    order = {key: None for key in json.loads(orders.read_text().splitlines()[0])} | {
        "shop_customer_id": "S9200003", "ordered_at": ts, "status": "delivered",
        "currency": "USD", "total_amount": "20.00", "shipping_country_code": "US",
        "shipping_city": "Oakland", "updated_at": ts,
    }  # fmt: skip
    shipped = [
        order | {"order_id": "O92000031", "shipping_address_line1": "12 BIRCH LN",
                 "shipping_postal_code": "94603"},
        # a gift to Ash Yarrowby's address: the buyer's name there matches nobody
        order | {"order_id": "O92000032", "shipping_address_line1": "5 Elm Row",
                 "shipping_postal_code": "94602"},
    ]  # fmt: skip
    orders.write_text(orders.read_text() + "".join(json.dumps(r) + "\n" for r in shipped))
    crm = next((home.landing / "crm" / "contacts").rglob("*.csv"))
    crm.write_text(
        crm.read_text()
        + "C9200001,,Quinn,Zephyrine,quinn.z@home.example.org,,+1 415 555 0111,1980-05-06,"
        f"77 Juniper Ct,,Oakland,94601,CA,US,,{ts},{ts},false\n"
        + "C9200002,,Ash,Yarrowby,ash.y55@home.example.org,,+1 415 555 0222,1955-01-01,"
        f"5 Elm Row,,Oakland,94602,CA,US,,{ts},{ts},false\n"
        + "C9200003,,Rowan,Quillfeather,rowan.q@home.example.org,,,1985-03-03,"
        f"12 Birch Ln,,Oakland,94603,CA,US,,{ts},{ts},false\n"
    )
    loyalty = next((home.landing / "loyalty" / "members").rglob("*.csv"))
    loyalty.write_text(
        loyalty.read_text()
        + f"L9200002,,ash.y90@inbox.example.org,,Ash,Yarrowby,1990-02-02,5 ELM ROW,Oakland,94602,"
        f"bronze,1,{ts},{ts}\n"
    )

    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert report.success, report.checks_failed
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        # the summary prints the refusals the graph-health step measured: the warehouse's own
        assert report.refusals is not None and report.refusals.refused > 0
        assert report.refusals == refusals.measure(con)
        ids = dict(
            con.execute(
                "select source_record_id, customer_id from marts.customer_id_map "
                "where source_record_id in "
                "('S9200001', 'C9200001', 'C9200002', 'L9200002', 'S9200003', 'C9200003')"
            ).fetchall()
        )
        assert ids["S9200001"] == ids["C9200001"], "name and address link the work account"
        link = con.execute(
            "select identifier_type, rule from intermediate.int_identity__edges "
            "where record_key = 'r|shop:customers:S9200001' and node_key like 'v|name_address:%'"
        ).fetchall()
        assert link == [("name_address", "shared_name_address")]
        assert ids["S9200003"] == ids["C9200003"], "the shipping address links the account"
        assert ids["S9200003"] != ids["C9200002"], "a gift's address is not the buyer's"
        shipped_to = con.execute(
            "select identifier_value from intermediate.int_identity__candidate_links "
            "where record_key = 'r|shop:customers:S9200003' "
            "and identifier_type = 'name_address' order by 1"
        ).fetchall()
        assert shipped_to == [
            ("rowan|quillfeather|12birchln|94603",),
            ("rowan|quillfeather|5elmrow|94602",),
        ]
        assert ids["C9200002"] != ids["L9200002"], "two birth dates at one name and address"
        conflict = con.execute(
            "select record_key, drop_reason from intermediate.int_identity__dropped_links "
            "where identifier_type = 'name_address' and record_key like '%9200002' order by 1"
        ).fetchall()
        assert conflict == [
            ("r|crm:contacts:C9200002", "birth_date_conflict"),
            ("r|loyalty:members:L9200002", "birth_date_conflict"),
        ]
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


def test_circuit_breaker_stops_activation_when_a_chain_merges_too_many(tmp_path, monkeypatch):
    """60 loyalty records chained pairwise through emails (each value shared by only 2 records,
    same first name: no per-value guard fires) make one 60-record customer when loyalty cards
    have no max_per_customer limit (a looser config, set through C360_DBT_VARS): the blocking check
    fails naming masked values, activation does not run, no raw value leaves the warehouse."""
    from demo.generator import generate
    from orchestration.dbt_vars import project_vars
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    identity = project_vars()["identity"]
    loose = {
        **identity,
        "identifiers": {
            **identity["identifiers"],
            "loyalty_member_id": {"priority": 1, "max_per_customer": None},
        },
    }
    monkeypatch.setenv("C360_DBT_VARS", json.dumps({"identity": loose}))
    generate(200, 4, AS_OF, home.landing, home.truth, progress=None)
    folder = home.landing / "loyalty" / "members" / f"dt={AS_OF.isoformat()}"
    header = (
        "member_id,crm_contact_id,email,phone,first_name,last_name,birthday,"
        "address_line1,city,postal_code,tier,"
        "points_balance,joined_at,updated_at"
    )
    ts = f"{AS_OF.isoformat()}T08:00:00Z"
    rows = [
        f"L77{i:05d},,sam.chain{i + (i % 2)}@chain.org,+1415555{i // 2 + 1000:04d},Sam,Chain,"
        f"1990-01-01,,,,bronze,1,{ts},{ts}"
        for i in range(60)
    ]
    (folder / "part-00001.csv").write_text(header + "\n" + "\n".join(rows) + "\n")

    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert not report.success
    assert "identity_state/graph_health:graph_within_bounds" in report.checks_failed
    assert "activation/file_drop" not in report.materialized
    evaluation = next(
        e.dagster_event.event_specific_data
        for e in home.instance.all_logs(report.run_id)
        if e.dagster_event
        and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.dagster_event.event_specific_data.check_name == "graph_within_bounds"
    )
    text = evaluation.description
    assert "largest customer" in text and "60 records" in text and "s***@***.org" in text
    assert "sam.chain" not in json.dumps(str(evaluation.metadata))


def test_a_merge_past_max_per_customer_is_refused_at_its_weakest_links(tmp_path, monkeypatch):
    """Two CRM contacts (same first name) share an email; a loyalty card names the first contact
    and carries the same email. At most one CRM contact per customer: the email links (priority
    2) are refused and recorded, the loyalty-to-CRM lookup (priority 1) still holds."""
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(200, 5, AS_OF, home.landing, home.truth, progress=None)
    ts = f"{AS_OF.isoformat()}T08:00:00Z"
    crm = next((home.landing / "crm" / "contacts").rglob("*.csv"))
    crm.write_text(
        crm.read_text()
        + f"C9000001,,Jordan,Ames,jordan.shared@corp.org,,+1 415 555 0101,,,,,,,US,,{ts},{ts},false\n"
        + f"C9000002,,Jordan,Berg,jordan.shared@corp.org,,+1 415 555 0102,,,,,,,US,,{ts},{ts},false\n"
    )
    loyalty = next((home.landing / "loyalty" / "members").rglob("*.csv"))
    loyalty.write_text(
        loyalty.read_text()
        + f"L9000001,C9000001,jordan.shared@corp.org,,Jordan,Ames,,,,,bronze,1,{ts},{ts}\n"
    )

    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert report.success, report.checks_failed
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        ids = dict(
            con.execute(
                "select source_record_id, customer_id from marts.customer_id_map "
                "where source_record_id in ('C9000001', 'C9000002', 'L9000001')"
            ).fetchall()
        )
        assert ids["C9000001"] != ids["C9000002"], "two CRM contacts never make one customer"
        assert ids["L9000001"] == ids["C9000001"], "the stronger loyalty-to-CRM link holds"
        drops = con.execute(
            "select record_key, identifier_type, rule, drop_reason, exceeded_type "
            "from intermediate.int_identity__limit_drops order by record_key"
        ).fetchall()
        planted = [d for d in drops if "9000" in d[0]]
        assert {d[0] for d in planted} == {
            "r|crm:contacts:C9000001",
            "r|crm:contacts:C9000002",
            "r|loyalty:members:L9000001",
        }
        assert all(
            d[1] == "email" and d[3] == "max_per_customer" and d[4] == "crm_contact_id"
            for d in planted
        ), planted
        over = con.execute(
            "select count(*) from intermediate.int_identity__components as c "
            "where c.node_key like 'r|crm:%' group by c.component_key having count(*) > 1"
        ).fetchall()
        assert over == [], "no customer holds two CRM contacts after limits"
