"""Probabilistic matching on real pipeline runs: typo pairs merge through links typed
probabilistic (merge log and `c360 identity explain` show the probability), namesakes stay apart;
and a threshold set far too low over-merges into a customer the circuit breaker stops."""

import json

import duckdb
import pytest

from orchestration.cli import main
from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="probabilistic_matching")]

TS = f"{AS_OF.isoformat()}T08:00:00Z"
# Same person twice, no key in common: the shop email is one character off the CRM email.
TYPO_CRM = ("C9100001", "Harriet", "Quill", "harriet.quill81@post.example.net", "+1 415 555 0901")
TYPO_SHOP = ("S9100001", "Harriet", "Quill", "hxrriet.quill81@post.example.net", None)
# Two different people of the same name: nothing else agrees.
NAMESAKE_CRM = (
    "C9100002",
    "Maria",
    "Fernandez",
    "mfernandez123@mail.example.org",
    "+1 415 555 0111",
)
NAMESAKE_SHOP = ("S9100002", "Maria", "Fernandez", "maria.f88@inbox.example.com", "+1 212 555 0199")  # fmt: skip
KEYS = {
    "typo_crm": f"r|crm:contacts:{TYPO_CRM[0]}",
    "typo_shop": f"r|shop:customers:{TYPO_SHOP[0]}",
    "namesake_crm": f"r|crm:contacts:{NAMESAKE_CRM[0]}",
    "namesake_shop": f"r|shop:customers:{NAMESAKE_SHOP[0]}",
}


def _plant(home) -> None:
    crm = next((home.landing / "crm" / "contacts").rglob("*.csv"))
    crm.write_text(
        crm.read_text()
        + "".join(
            f"{cid},,{first},{last},{email},,{phone},1981-03-04,12 valencia st,,San Francisco,"
            f"94110,CA,US,,{TS},{TS},false\n"
            for cid, first, last, email, phone in (TYPO_CRM, NAMESAKE_CRM)
        )
    )
    folder = home.landing / "shop" / "customers" / f"dt={AS_OF.isoformat()}"
    (folder / "part-09998.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "shop_customer_id": sid,
                    "email": email,
                    "phone": phone,
                    "first_name": first,
                    "last_name": last,
                    "country_code": "US",
                    "address_line1": None,
                    "address_line2": None,
                    "city": None,
                    "postal_code": None,
                    "created_at": TS,
                    "updated_at": TS,
                }
            )
            + "\n"
            for sid, first, last, email, phone in (TYPO_SHOP, NAMESAKE_SHOP)
        )
    )


def _vars(monkeypatch, **probabilistic) -> None:
    from orchestration.dbt_vars import project_vars

    identity = project_vars()["identity"]
    # the second run's merges (this sample's own typo pairs) are a large share of 300 persons;
    # the merge-rate breaker is not what this test is about
    identity = {
        **identity,
        "probabilistic": {**identity["probabilistic"], **probabilistic},
        "circuit_breaker": {**identity["circuit_breaker"], "max_merge_rate": 0.5},
    }
    monkeypatch.setenv("C360_DBT_VARS", json.dumps({"identity": identity}))


def _ids(con) -> dict[str, str]:
    by_key = dict(
        con.execute(
            "select record_key, customer_id from marts.customer_id_map "
            "where record_key in (select unnest(?))",
            [list(KEYS.values())],
        ).fetchall()
    )
    return {name: by_key[key] for name, key in KEYS.items()}


def test_typo_pairs_merge_as_probabilistic_links_and_namesakes_stay_apart(
    tmp_path, monkeypatch, capsys
):
    """Run 1 without probabilistic matching: the typo pair is two customers. Run 2 with it: one
    customer through a link typed probabilistic (p >= threshold), the merge logged with rule
    probabilistic and the probability; explain lists the link with its probability; the
    namesakes stay two customers."""
    from demo.generator import generate
    from orchestration.identity import config as identity_config
    from orchestration.identity import training
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(300, 21, AS_OF, home.landing, home.truth, progress=None)
    _plant(home)

    _vars(monkeypatch, enabled=False)
    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert report.success, report.checks_failed
    assert "identity/probabilistic_links" in report.materialized
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        before = _ids(con)
        assert con.execute("select count(*) from identity.probabilistic_links").fetchone()[0] == 0
    assert before["typo_crm"] != before["typo_shop"], "no deterministic key joins the typo pair"

    _vars(monkeypatch, enabled=True)
    settings = identity_config.load().probabilistic
    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert report.success, report.checks_failed
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        after = _ids(con)
        # the model was trained on this warehouse's records; its threshold is the fitted one's
        _, threshold, label = training.model_in_use(con, settings)
        assert label == "v1", label
        link = con.execute(
            "select identifier_type, rule, identifier_value, match_probability "
            "from intermediate.int_identity__edges where record_key = ? and node_key = ?",
            [KEYS["typo_crm"], KEYS["typo_shop"]],
        ).fetchone()
        namesake_links = con.execute(
            "select count(*) from intermediate.int_identity__edges "
            "where record_key in (select unnest(?)) and node_key in (select unnest(?))",
            [[KEYS["namesake_crm"]], [KEYS["namesake_shop"]]],
        ).fetchone()[0]
        merge = con.execute(
            "select rule, identifier_type, identifier_value from audit.identity_merge_log "
            "where event = 'merge' and customer_id = ? and other_customer_id in (?, ?)",
            [after["typo_crm"], before["typo_crm"], before["typo_shop"]],
        ).fetchone()
    assert after["typo_crm"] == after["typo_shop"], "the typo pair is one customer"
    assert after["namesake_crm"] != after["namesake_shop"], "namesakes stay apart"
    assert namesake_links == 0
    assert link is not None and link[:2] == ("probabilistic", "probabilistic")
    assert link[3] >= threshold and link[2] == f"p={link[3]:.6f}"
    assert merge == ("probabilistic", "probabilistic", link[2]), merge

    assert main(["identity", "explain", after["typo_crm"]]) == 0
    out = capsys.readouterr().out
    assert "probabilistic links scored by model v1 trained" in out
    line = next(x for x in out.splitlines() if KEYS["typo_crm"] in x and "probabilistic" in x)
    assert KEYS["typo_shop"] in line and "probability" in out
    assert f"{link[3]:.6f}" in line, line  # the probability, not a masked value


def test_circuit_breaker_stops_activation_when_probabilistic_links_over_merge(
    tmp_path, monkeypatch
):
    """60 loyalty cards of different people named Sam Chain born the same day (own emails, no
    phone, no key in common: the generator's namesakes, 60 times over; the model gives each pair
    p ≈ 0.83), with loyalty cards unlimited per customer (a looser config) and the threshold at
    0.5: the probabilistic links make one 60-record customer, the blocking check fails, activation
    does not run."""
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
        "probabilistic": {"enabled": True, "threshold": 0.5},
    }
    monkeypatch.setenv("C360_DBT_VARS", json.dumps({"identity": loose}))
    generate(200, 4, AS_OF, home.landing, home.truth, progress=None)
    folder = home.landing / "loyalty" / "members" / f"dt={AS_OF.isoformat()}"
    header = (
        "member_id,crm_contact_id,email,phone,first_name,last_name,birthday,"
        "address_line1,city,postal_code,tier,"
        "points_balance,joined_at,updated_at"
    )
    rows = [
        f"L78{i:05d},,sam{i * 7919 % 100000:05d}@chain{i}.org,,Sam,"
        f"Chain,1970-01-01,,,,bronze,1,{TS},{TS}"
        for i in range(60)
    ]
    (folder / "part-00001.csv").write_text(header + "\n" + "\n".join(rows) + "\n")

    report = run_nightly(AS_OF, instance=home.instance, log_level="WARNING")
    assert not report.success
    assert "identity_state/graph_health:graph_within_bounds" in report.checks_failed
    assert "activation/file_drop" not in report.materialized
    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        chained = con.execute(
            "select count(distinct customer_id), count(*) from marts.customer_id_map "
            "where source_record_id like 'L78%'"
        ).fetchone()
        deterministic = con.execute(
            "select count(*) from intermediate.int_identity__deterministic_edges "
            "where record_key like 'r|loyalty:members:L78%' and node_key like 'r|%'"
        ).fetchone()[0]
    assert chained == (1, 60), "the probabilistic links alone made one customer"
    assert deterministic == 0
    evaluation = next(
        e.dagster_event.event_specific_data
        for e in home.instance.all_logs(report.run_id)
        if e.dagster_event
        and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.dagster_event.event_specific_data.check_name == "graph_within_bounds"
    )
    assert "largest customer" in evaluation.description and "60 records" in evaluation.description
