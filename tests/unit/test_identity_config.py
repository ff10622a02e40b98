"""Identity config: valid as committed, clear errors, and blocklist regexes that mean the same in
DuckDB (the SQL dbt runs) and Python."""

import json

import duckdb
import pytest

from orchestration.identity.config import (
    GOLDEN_COLUMNS,
    IdentityConfigError,
    load,
    load_survivorship,
    parse,
    parse_survivorship,
)

SAMPLES = {
    "email": ["test@test.com", "noreply@shop.example", "no-reply@x.org", "jane.doe@example.com",
              "tester@x.org", "a@mailinator.com", "null@x.com", "contest@x.com"],
    "phone": ["+0000000000", "00000", "+10000000000", "+11111111111", "+11234567890", "+442071234567",
              "+12125550134"],
}  # fmt: skip


def test_committed_config_is_valid():
    config = load()
    assert (
        config.priorities["crm_contact_id"]
        < config.priorities["email"]
        < config.priorities["phone"]
    )
    assert config.max_records_per_value["email"] >= 2
    assert config.is_blocked("email", "test@test.com")
    assert not config.is_blocked("email", "jane.doe@example.com")
    assert {"email", "phone"} <= config.name_guarded
    # permanent ids: a CRM contact or shop account is one person, never merged with another
    assert config.max_per_customer["crm_contact_id"] == (1, None)
    assert config.max_per_customer["shop_customer_id"] == (1, None)
    assert config.priorities["anonymous_id"] > config.priorities["phone"]


def test_blocklist_regexes_agree_between_duckdb_and_python():
    config = load()
    con = duckdb.connect()
    for entry in config.blocklist:
        if entry.regex is None:
            continue
        for value in SAMPLES[entry.identifier_type]:
            in_sql = con.execute("select regexp_full_match(?, ?)", [value, entry.regex]).fetchone()[
                0
            ]
            assert in_sql == entry.matches(value), (entry.regex, value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"identifiers": {"fax": {"priority": 1}}},
            "vars.identity.identifiers.fax: unknown identifier type",
        ),
        ({"identifiers": {"email": {"priority": 0}}}, "identifiers.email.priority"),
        (
            {"identifiers": {"email": {"priority": 1, "max_records_per_value": 1}}},
            "max_records_per_value",
        ),
        (
            {"blocklist": [{"type": "email"}]},
            "vars.identity.blocklist[0]: give exactly one of exact or regex",
        ),
        ({"blocklist": [{"type": "email", "regex": "("}]}, "vars.identity.blocklist[0].regex"),
        (
            {"identifiers": {"email": {"priority": 1, "require_matching_first_name": "yes"}}},
            "identifiers.email.require_matching_first_name: true or false",
        ),
        ({"name_max_edit_distance": -1}, "vars.identity.name_max_edit_distance"),
        ({"blocklst": []}, "vars.identity.blocklst: unknown setting"),
        ({"circuit_breaker": {"max_merge_rate": 2}}, "circuit_breaker.max_merge_rate: a share"),
        ({"circuit_breaker": {"max_cluster": 9}}, "circuit_breaker.max_cluster: unknown setting"),
        (
            {"identifiers": {"email": {"priority": 2, "max_per_customer": 0}}},
            "identifiers.email.max_per_customer: an integer >= 1",
        ),
        (
            {"identifiers": {"email": {"priority": 2, "within_days": 30}}},
            "identifiers.email.within_days: only with max_per_customer",
        ),
        (
            {"identifiers": {"email": {"priority": 2, "max_per_customer": 3, "within_days": 0}}},
            "identifiers.email.within_days: a number of days",
        ),
        (
            {"identifiers": {"email": {"priority": 2, "max_per_custmer": 3}}},
            "identifiers.email.max_per_custmer: unknown setting",
        ),
    ],
)
def test_invalid_config_errors_name_the_field(raw, message):
    with pytest.raises(IdentityConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(raw)


def test_committed_survivorship_covers_every_golden_column_once():
    groups = load_survivorship()
    columns = [c for g in groups for c in g.columns]
    assert sorted(columns) == sorted(GOLDEN_COLUMNS)
    address = next(g for g in groups if "address_line1" in g.columns)
    assert {"city", "postal_code"} <= set(address.columns)  # one record gives the whole address


_OK = {"default_source_priority": ["crm", "shop"], "attributes": {
    "all": {"columns": list(GOLDEN_COLUMNS)}}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"default_source_priority": ["crm", "erp"]}, "default_source_priority: unknown source 'erp'"),
        ({"attributes": {"all": {"columns": [*GOLDEN_COLUMNS, "shoe_size"]}}},
         "attributes.all.columns: 'shoe_size' is not a golden-record column"),
        ({"attributes": {"all": {"columns": list(GOLDEN_COLUMNS)}, "again": {"columns": ["city"]}}},
         "attributes.again.columns: 'city' is already in group 'all'"),
        ({"attributes": {"some": {"columns": ["city"]}}}, "no group chooses first_name"),
        ({"attributes": {"all": {"columns": list(GOLDEN_COLUMNS), "source_priority": ["shop", "shop"]}}},
         "attributes.all.source_priority: a source is listed twice"),
    ],
)  # fmt: skip
def test_invalid_survivorship_errors_name_the_field(change, message):
    with pytest.raises(IdentityConfigError, match=message.replace(".", r"\.")):
        parse_survivorship({**_OK, **change})
    assert parse_survivorship(_OK)[0].source_priority == ("crm", "shop")


def test_env_vars_merge_deeply_for_python_and_dbt(monkeypatch):
    """A partial C360_DBT_VARS identity block changes what it names and keeps every other rule,
    limit and blocklist entry — in Python and in the --vars the nightly dbt build passes."""
    from orchestration.dbt_vars import DbtVarsError, overrides

    identity = load()
    partial = {
        "identifiers": {"email": {"max_records_per_value": 20}},
        "circuit_breaker": {"max_cluster_records": 9},
    }
    monkeypatch.setenv("C360_DBT_VARS", json.dumps({"identity": partial}))
    tuned = load()
    assert tuned.circuit_breaker.max_cluster_records == 9
    assert tuned.circuit_breaker.max_merge_rate == identity.circuit_breaker.max_merge_rate
    assert tuned.max_records_per_value["email"] == 20
    assert tuned.max_records_per_value["phone"] == identity.max_records_per_value["phone"]
    # every other rule and limit kept (the old top-level replace dropped them all)
    assert tuned.priorities == identity.priorities
    assert tuned.max_per_customer == identity.max_per_customer
    assert tuned.name_guarded == identity.name_guarded
    assert tuned.blocklist == identity.blocklist
    assert tuned.probabilistic == identity.probabilistic
    # dbt gets the whole merged block (dbt --vars replaces a var whole)
    sent = overrides()["identity"]
    assert sent["identifiers"]["email"]["require_matching_first_name"] is True
    assert sent["identifiers"]["crm_contact_id"] == {"priority": 1, "max_per_customer": 1}
    assert sent["blocklist"] and sent["phone_default_region"]

    # null removes one key (a looser config on purpose); a list replaces the project's list
    monkeypatch.setenv(
        "C360_DBT_VARS",
        json.dumps({"identity": {"identifiers": {"loyalty_member_id": {"max_per_customer": None}},
                                 "blocklist": [{"type": "email", "exact": "x@y.org"}]}}),
    )  # fmt: skip
    loose = load()
    assert "loyalty_member_id" not in loose.max_per_customer
    assert loose.priorities["loyalty_member_id"] == 1
    assert loose.max_per_customer["crm_contact_id"] == (1, None)
    assert [e.exact for e in loose.blocklist] == ["x@y.org"]

    # refused, naming the key
    monkeypatch.setenv("C360_DBT_VARS", "[1, 2]")
    with pytest.raises(DbtVarsError, match="C360_DBT_VARS: must be a mapping"):
        overrides()
    monkeypatch.setenv("C360_DBT_VARS", '{"identity": {"identifiers": {"fax": {"priority": 1}}}}')
    with pytest.raises(IdentityConfigError, match=r"C360_DBT_VARS.*identifiers\.fax: unknown"):
        load()
    monkeypatch.setenv("C360_DBT_VARS", '{"identiy": {"name_max_edit_distance": 2}}')
    with pytest.raises(DbtVarsError, match=r"identiy: not a var of dbt_project\.yml"):
        load()
    monkeypatch.setenv("C360_DBT_VARS", '{"identity": {"circuit_breaker": {"max_merge": 0.5}}}')
    with pytest.raises(IdentityConfigError, match=r"circuit_breaker\.max_merge: unknown setting"):
        load()
    monkeypatch.setenv("C360_DBT_VARS", '{"identity": {"identifiers": []}}')
    with pytest.raises(DbtVarsError, match=r"identity\.identifiers is a mapping"):
        load()
    monkeypatch.setenv("C360_DBT_VARS", '{"identity": null}')
    with pytest.raises(DbtVarsError, match=r"identity: a project var cannot be removed"):
        load()
    monkeypatch.setenv(
        "C360_DBT_VARS", '{"survivorship": {"attributes": {"name": {"columns": ["nick"]}}}}'
    )
    with pytest.raises(IdentityConfigError, match=r"attributes\.name\.columns: 'nick'"):
        load_survivorship()
