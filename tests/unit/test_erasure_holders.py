"""privacy/destinations.holders: one query for every request of a night finds, per request, the
sync_state rows the per-request lookup found (by customer id or identifier, not `removed`,
ordered by sync and identifier)."""

import duckdb

from orchestration.privacy.destinations import holders

STATE = [
    ("email_a", "C1", "a@x.org", 1, "synced"),
    ("email_a", "C2", "b@x.org", 2, "synced"),
    ("sms_b", "C1", "+15550001", None, "synced"),
    ("sms_b", "C3", "+15550003", 1, "removed"),
    ("ads_c", "C9", "a@x.org", 4, "synced"),  # another customer's row keyed by a@x.org
]


def _per_request(con, customer_ids: set[str], identifiers: set[str]) -> list[tuple]:
    return con.execute(
        "select sync_id, identifier, generation from activation.sync_state "
        "where status <> 'removed' and (list_contains(?, customer_id) "
        "or list_contains(?, identifier)) order by sync_id, identifier",
        [sorted(customer_ids), sorted(identifiers)],
    ).fetchall()


def test_one_query_finds_what_each_request_alone_finds():
    con = duckdb.connect()
    assert holders(con, [({"C1"}, set())]) == [[]]  # no sync_state table yet: nothing held
    con.execute("create schema activation")
    con.execute(
        "create table activation.sync_state (sync_id varchar, customer_id varchar, "
        "identifier varchar, generation integer, status varchar)"
    )
    con.executemany("insert into activation.sync_state values (?, ?, ?, ?, ?)", STATE)
    wanted = [
        ({"C1"}, set()),
        (set(), {"a@x.org"}),
        ({"C1"}, {"a@x.org", "+15550001"}),  # found twice, listed once
        ({"C3"}, {"+15550003"}),  # removed
        (set(), set()),
        ({"C2", "C9"}, {"nobody@x.org"}),
    ]
    got = holders(con, wanted)
    assert got == [_per_request(con, c, i) for c, i in wanted]
    assert got[2] == [("ads_c", "a@x.org", 4), ("email_a", "a@x.org", 1),
                      ("sms_b", "+15550001", None)]  # fmt: skip
    assert got[3] == [] and got[4] == []
