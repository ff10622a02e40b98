"""Within-source duplicates (issue 15, core 3): a source entity declared under
`vars.identity.sources_with_duplicates` (a CRM holding duplicate contacts) may merge its records,
still under every other limit; every refused link is counted by the limit that refused it, in the
run summary and in a warning check past `max_refused_link_share`.

Runs the real limit models with dbt on a scratch DuckDB holding only the graph they read."""

import copy
import datetime as dt
from pathlib import Path

import duckdb
import pytest

from orchestration.dbt_vars import declared_vars
from orchestration.identity import config as identity_config
from orchestration.identity import refusals
from orchestration.summary import render_summary
from tests import scratch_dbt

AS_OF = "2026-11-21"
C1, C2, C3 = (f"r|crm:contacts:C{i}" for i in (1, 2, 3))
S1, S2 = "r|shop:customers:S1", "r|shop:customers:S2"
# One person with three CRM contacts (an email joins C1 and C2, an address C2 and C3), and two
# shop accounts sharing one email: one CRM holds duplicates, the shop does not say so.
EDGES = [
    (C1, "v|email:ada@x.org", "email", "ada@x.org", "shared_email"),
    (C2, "v|email:ada@x.org", "email", "ada@x.org", "shared_email"),
    (C2, "v|name_address:adalovelace1mainst62701", "name_address", "k", "shared_name_address"),
    (C3, "v|name_address:adalovelace1mainst62701", "name_address", "k", "shared_name_address"),
    (S1, "v|email:bob@x.org", "email", "bob@x.org", "shared_email"),
    (S2, "v|email:bob@x.org", "email", "bob@x.org", "shared_email"),
]
RECORDS = [C1, C2, C3, S1, S2]


def _identity(**over) -> dict:
    raw = copy.deepcopy(declared_vars()["identity"])
    raw.update(over)
    return raw


def _resolve(tmp: Path, identity: dict) -> duckdb.DuckDBPyConnection:
    """Build clusters → limits → components with dbt; returns a connection to the warehouse."""
    warehouse = tmp / "wh.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema intermediate")
        con.execute(
            "create table intermediate.int_identity__edges (record_key varchar, node_key varchar, "
            "identifier_type varchar, identifier_value varchar, rule varchar)"
        )
        con.executemany(
            "insert into intermediate.int_identity__edges values (?, ?, ?, ?, ?)", EDGES
        )
        con.execute(
            "create table intermediate.int_identity__records (record_key varchar, "
            "updated_at timestamp)"
        )
        con.executemany(
            "insert into intermediate.int_identity__records values (?, timestamp '2026-11-01')",
            [(r,) for r in RECORDS],
        )
        # what the models before the limits would have left: the candidates, one refused value
        con.execute(
            "create table intermediate.int_identity__candidate_links as "
            "select record_key, node_key, identifier_type, identifier_value, rule "
            "from intermediate.int_identity__edges"
        )
        con.execute(
            "insert into intermediate.int_identity__candidate_links values "
            "(?, 'v|phone:+10000000000', 'phone', '+10000000000', 'shared_phone')",
            [C1],
        )
        con.execute(
            "create table intermediate.int_identity__dropped_links as select record_key, "
            "node_key, identifier_type, rule, 'blocklist_regex' as drop_reason "
            "from intermediate.int_identity__candidate_links where identifier_type = 'phone'"
        )
    result = scratch_dbt.run(
        warehouse,
        ["run", "--quiet", "--select",
         "int_identity__clusters int_identity__node_types int_identity__limit_violations "
         "int_identity__limit_drops int_identity__components"],
        as_of=AS_OF,
        log_path=tmp / "logs",
        variables={"identity": identity},
    )  # fmt: skip
    if result.returncode:
        raise RuntimeError(result.stdout + result.stderr)
    return duckdb.connect(str(warehouse))


def _customers(con) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for node, component in con.execute(
        "select node_key, component_key from intermediate.int_identity__components "
        "where node_key like 'r|%'"
    ).fetchall():
        groups.setdefault(component, set()).add(node)
    return {frozenset(g) for g in groups.values()}


def _limit_drops(con) -> dict[str, int]:
    return dict(
        con.execute(
            "select exceeded_type, count(*) from intermediate.int_identity__limit_drops group by 1"
        ).fetchall()
    )


@pytest.fixture(scope="module")
def undeclared(tmp_path_factory):
    con = _resolve(tmp_path_factory.mktemp("undeclared"), _identity())
    yield con
    con.close()


@pytest.fixture(scope="module")
def declared(tmp_path_factory):
    con = _resolve(
        tmp_path_factory.mktemp("declared"), _identity(sources_with_duplicates=["crm__contacts"])
    )
    yield con
    con.close()


def test_undeclared_duplicates_are_refused_by_the_permanent_id_limit(undeclared):
    assert _customers(undeclared) == {frozenset({r}) for r in RECORDS}
    assert _limit_drops(undeclared) == {"crm_contact_id": 4, "shop_customer_id": 2}


def test_declared_source_merges_its_records_and_other_limits_still_hold(declared):
    assert _customers(declared) == {frozenset({C1, C2, C3}), frozenset({S1}), frozenset({S2})}
    assert _limit_drops(declared) == {"shop_customer_id": 2}


def test_every_refused_link_is_counted_by_its_limit(undeclared, declared):
    before = refusals.measure(undeclared)
    assert before.candidate_links == 7
    assert before.by_limit == {
        "max_per_customer:crm_contact_id": 4,
        "max_per_customer:shop_customer_id": 2,
        "blocklist_regex:phone": 1,
    }
    assert before.refused == 7 and before.exceeds(0.1)
    message = before.message(0.1)
    assert "7 of 7 candidate links refused" in message
    assert "max_per_customer:crm_contact_id 4" in message and "sources_with_duplicates" in message
    after = refusals.measure(declared)
    assert after.by_limit == {"max_per_customer:shop_customer_id": 2, "blocklist_regex:phone": 1}
    assert not after.exceeds(0.5) and after.exceeds(0.1)


def test_run_summary_counts_refused_links(undeclared):
    undeclared.execute("create schema if not exists audit")
    undeclared.execute(
        "create table if not exists audit.ingestion_audit (contract_id varchar, as_of date, "
        "extracted bigint, loaded bigint, quarantined bigint, deduplicated bigint)"
    )
    # the summary reads one as_of: a run recorded for it, and the marts built at it
    undeclared.execute(
        "create table if not exists audit.ingestion_batches as select 'crm__contacts' as "
        "contract_id, null::varchar as batch_id, date '2026-11-21' as as_of, 'r1' as run_id, "
        "'staged' as status, now() as staged_at"
    )
    undeclared.execute("create schema if not exists marts")
    undeclared.execute(
        "create table if not exists marts.customer_360 as select date '2026-11-21' as as_of"
    )
    text = render_summary(undeclared, dt.date(2026, 11, 21), None)
    assert (
        "identity: 7 links refused of 7 candidate links (100.00%) "
        "(max_per_customer:crm_contact_id: 4, max_per_customer:shop_customer_id: 2, "
        "blocklist_regex:phone: 1)"
    ) in text
    assert "WARNING: 7 of 7 candidate links refused" in text


def test_no_identity_tables_no_line(tmp_path):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as con:
        assert refusals.measure(con) is None


def test_graph_health_has_a_warning_check_for_refused_links():
    from orchestration.defs.transform.identity_health import KEY, identity_graph_health

    spec = next(s for s in identity_graph_health.check_specs if s.name == "refused_links_share")
    assert spec.asset_key == KEY and not spec.blocking
    assert "max_refused_link_share" in spec.description


def test_config_declares_and_validates_sources_with_duplicates():
    default = identity_config.parse(_identity())
    assert default.sources_with_duplicates == () and default.max_refused_link_share == 0.1
    assert default.max_per_customer["crm_contact_id"] == (1, None)
    lifted = identity_config.parse(_identity(sources_with_duplicates=["crm__contacts"]))
    assert "crm_contact_id" not in lifted.max_per_customer
    assert lifted.max_per_customer["shop_customer_id"] == (1, None)
    assert lifted.max_records_per_value == default.max_records_per_value
    for bad, message in [
        (["crm__contact"], r"sources_with_duplicates: unknown source entity 'crm__contact'"),
        ("crm__contacts", r"sources_with_duplicates: a list of source entities is required"),
        (["crm__contacts"] * 2, r"sources_with_duplicates: a source entity is listed twice"),
    ]:
        with pytest.raises(identity_config.IdentityConfigError, match=message):
            identity_config.parse(_identity(sources_with_duplicates=bad))
    for bad in (1.5, -0.1, "high", True):
        with pytest.raises(
            identity_config.IdentityConfigError, match=r"max_refused_link_share: a share"
        ):
            identity_config.parse(_identity(max_refused_link_share=bad))


def test_c360_dbt_vars_can_declare_duplicates(monkeypatch):
    monkeypatch.setenv(
        "C360_DBT_VARS", '{"identity": {"sources_with_duplicates": ["crm__contacts"]}}'
    )
    config = identity_config.load()
    assert config.sources_with_duplicates == ("crm__contacts",)
    assert "crm_contact_id" not in config.max_per_customer
    assert config.max_per_customer["loyalty_member_id"] == (1, None)
