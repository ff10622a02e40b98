"""Plain-DuckDB reference for bench/nightly.py: the nightly's main work on the same landing files,
written directly in SQL on one DuckDB connection, as the floor a nightly is compared to.

Stages (each timed):

1. **load**: every landing file visible at --as-of (`dt=` folders up to it), all values as text;
2. **type**: timestamps, dates, numbers and booleans cast (`try_cast`, a bad value becomes null),
   emails lower-cased and trimmed, phones to E.164 (digits; `00` and `+` prefixes; a national
   number gets its record's country code);
3. **dedupe**: the latest version of each record id (by `updated_at`, then the file's `dt=`);
4. **identity**: records (CRM contacts not deleted, shop customers, loyalty members, web anonymous
   ids) linked to shared emails, phones and name-at-postal-address, loyalty → CRM contact, web
   anonymous id → shop customer through identify events; connected components by iterated
   min-label propagation until nothing changes; a component is a customer;
5. **customer_360**: per customer the order stats (revenue orders, lifetime revenue, last order,
   orders in 365 days), loyalty, email opens/clicks (30/90 days), web sessions and cart adds
   (30 days), consent state per contact point (latest event; granted and not expired), erasure,
   time zone, birth date, RFM ntiles; the segment inputs (events and revenue orders with local
   dates in the customer's zone);
6. **segments**: the ten shipped segments as hand-written in bench/segments_reference.sql (dates
   shifted when --as-of is not 2026-11-21).

Left out, on purpose (what the pipeline does on top): the write-audit-publish of ingestion with
its contracts, quarantine and per-file bookkeeping; the quality gates and Great Expectations
suites; the audit and run metadata; persistent customer ids and their history
(customer_id_map / customer_id_history); the junk-value blocklist, per-value limits and
first-name-conflict guard of the deterministic links; Splink's probabilistic matching; the
`phonenumbers` parsing (a digits-only rule here); survivorship by source priority (any non-null
value here); the consent, campaign and KPI marts besides customer_360; activation and Dagster.

    .venv/bin/python bench/nightly_reference.py --landing /tmp/home/landing --as-of 2026-11-21
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import time
from pathlib import Path

import duckdb

REFERENCE_SQL = Path(__file__).with_name("segments_reference.sql")
SEGMENTS_AS_OF = dt.date(2026, 11, 21)  # the as_of segments_reference.sql's dates are written for
CALLING_CODES = {"US": "1", "GB": "44", "DE": "49", "FR": "33", "NL": "31"}
DEFAULT_ZONES = {
    "US": "America/New_York", "GB": "Europe/London", "DE": "Europe/Berlin",
    "FR": "Europe/Paris", "NL": "Europe/Amsterdam",
}  # fmt: skip
# landing entity -> (table, record id column); the extension decides the reader
ENTITIES = {
    "crm/contacts": ("crm_contacts", "contact_id"),
    "crm/accounts": ("crm_accounts", "account_id"),
    "shop/customers": ("shop_customers", "shop_customer_id"),
    "shop/orders": ("shop_orders", "order_id"),
    "shop/order_lines": ("shop_order_lines", "order_line_id"),
    "loyalty/members": ("loyalty_members", "member_id"),
    "web/events": ("web_events", "event_id"),
    "email/engagement": ("email_engagement", "engagement_event_id"),
    "consent/events": ("consent_events", "consent_event_id"),
    "consent/suppressions": ("consent_suppressions", "suppression_id"),
    "consent/erasure_requests": ("erasure_requests", "erasure_request_id"),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def visible_files(landing: Path, entity: str, as_of: dt.date) -> list[Path]:
    """Files of one entity in `dt=` folders up to as_of (and files outside any dt= folder)."""
    found = []
    for path in sorted((landing / entity).rglob("*")):
        if not path.is_file() or path.suffix not in (".csv", ".jsonl", ".parquet"):
            continue
        match = re.search(r"dt=(\d{4}-\d{2}-\d{2})", str(path.relative_to(landing)))
        if match is None or dt.date.fromisoformat(match.group(1)) <= as_of:
            found.append(path)
    return found


def load(con: duckdb.DuckDBPyConnection, landing: Path, as_of: dt.date) -> dict[str, int]:
    """One raw table per entity, every column text, with the file's dt= date as `_dt`."""
    rows = {}
    for entity, (table, _) in ENTITIES.items():
        files = visible_files(landing, entity, as_of)
        if not files:
            continue
        names = ", ".join(f"'{f}'" for f in files)
        suffix = files[0].suffix
        if suffix == ".csv":
            reader = f"read_csv([{names}], all_varchar = true, header = true, filename = true)"
        elif suffix == ".jsonl":
            reader = (f"read_json([{names}], format = 'newline_delimited', filename = true, "
                      "maximum_object_size = 16777216)")  # fmt: skip
        else:
            reader = f"read_parquet([{names}], filename = true)"
        con.execute(
            f"create or replace table raw_{table} as select * exclude (filename), "
            f"try_cast(regexp_extract(filename, 'dt=([0-9-]+)', 1) as date) as _dt from {reader}"
        )
        rows[table] = con.execute(f"select count(*) from raw_{table}").fetchone()[0]
    return rows


def _phone(column: str, country: str | None) -> str:
    """SQL for a phone in E.164: `+` or `00` prefix -> international; else the country's code
    with the national leading 0 dropped; null when fewer than 8 digits."""
    digits = f"regexp_replace(coalesce({column}, ''), '[^0-9]', '', 'g')"
    national = "null"
    if country is not None:
        cases = " ".join(f"when '{c}' then '{code}'" for c, code in CALLING_CODES.items())
        national = (f"(case {country} {cases} end) || "
                    f"case when {digits} like '0%' then substr({digits}, 2) else {digits} end")  # fmt: skip
    return (
        f"case when length({digits}) < 8 then null "
        f"when trim({column}) like '+%' then '+' || {digits} "
        f"when {digits} like '00%' then '+' || substr({digits}, 3) "
        f"else '+' || ({national}) end"
    )


def _email(column: str) -> str:
    return f"nullif(lower(trim({column})), '')"


def type_and_dedupe(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Typed, deduplicated tables (latest version of each record id), one per entity."""
    ts = "try_cast({} as timestamptz)".format
    typed = {
        "crm_contacts": f"""contact_id, account_id, first_name, last_name,
            {_email("email")} as email, coalesce({_phone("mobile_phone", "country_code")},
            {_phone("phone", "country_code")}) as phone_e164,
            try_cast(date_of_birth as date) as date_of_birth, address_line1, city, postal_code,
            country_code, time_zone, {ts("updated_at")} as updated_at,
            coalesce(try_cast(is_deleted as boolean), false) as is_deleted, _dt""",
        "crm_accounts": f"account_id, account_name, {ts('updated_at')} as updated_at, _dt",
        "shop_customers": f"""shop_customer_id, first_name, last_name, {_email("email")} as email,
            {_phone("phone", "country_code")} as phone_e164, address_line1, city, postal_code,
            country_code, {ts("updated_at")} as updated_at, _dt""",
        "shop_orders": f"""order_id, shop_customer_id, {ts("ordered_at")} as ordered_at, status,
            status in ('paid', 'shipped', 'delivered') as is_revenue,
            try_cast(total_amount as decimal(18, 2)) as total_amount,
            shipping_address_line1, shipping_postal_code, {ts("updated_at")} as updated_at, _dt""",
        "shop_order_lines": f"""order_line_id, order_id, product_id, category,
            try_cast(unit_price as decimal(18, 2)) as unit_price,
            try_cast(quantity as integer) as quantity, {ts("updated_at")} as updated_at, _dt""",
        "loyalty_members": f"""member_id, crm_contact_id, {_email("email")} as email,
            {_phone("phone", None)} as phone_e164, first_name, last_name,
            try_cast(birthday as date) as date_of_birth, address_line1, city, postal_code, tier,
            try_cast(points_balance as bigint) as points_balance,
            {ts("updated_at")} as updated_at, _dt""",
        "web_events": f"""event_id, cast(anonymous_id as varchar) as anonymous_id,
            cast(user_id as varchar) as user_id, event_name,
            {ts("occurred_at")} as occurred_at, {ts("received_at")} as updated_at, _dt""",
        "email_engagement": f"""engagement_event_id, {_email("email")} as email, event_type,
            {ts("occurred_at")} as occurred_at, {ts("occurred_at")} as updated_at, _dt""",
        "consent_events": f"""consent_event_id, case when contact_point_type = 'email'
            then {_email("contact_point")} else {_phone("contact_point", None)} end
            as contact_point, channel, purpose, status, {ts("captured_at")} as captured_at,
            {ts("expires_at")} as expires_at, {ts("captured_at")} as updated_at, _dt""",
        "consent_suppressions": f"""suppression_id, contact_point, channel,
            {ts("updated_at")} as updated_at, _dt""",
        "erasure_requests": f"""erasure_request_id, case when contact_point_type = 'email'
            then {_email("contact_point")} else {_phone("contact_point", None)} end
            as contact_point, {ts("requested_at")} as updated_at, _dt""",
    }
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from orchestration.contracts.model import all_source_contracts

    contract_columns = {
        ENTITIES[c.id.replace("__", "/")][0]: c.column_names
        for c in all_source_contracts()
        if c.id.replace("__", "/") in ENTITIES
    }
    rows = {}
    for _, (table, key) in ENTITIES.items():
        if not con.execute(
            "select count(*) from duckdb_tables() where table_name = ?", [f"raw_{table}"]
        ).fetchone()[0]:
            # no file for this entity (e.g. no erasure request yet): an empty table of its shape
            columns = ", ".join(f"null::varchar as {c}" for c in contract_columns[table])
            con.execute(f"create or replace table raw_{table} as select {columns}, "
                        "null::date as _dt where false")  # fmt: skip
        con.execute(
            f"create or replace table {table} as select * exclude (_rank) from ("
            f"select {typed[table]}, row_number() over (partition by {key} "
            f"order by updated_at desc nulls last, _dt desc) as _rank from raw_{table}) "
            "where _rank = 1"
        )
        rows[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
    return rows


def identity(con: duckdb.DuckDBPyConnection, as_of_end: str) -> tuple[int, int]:
    """Records, links, connected components; returns (components, propagation passes)."""
    con.execute("""
        create or replace table id_records as
        select 'crm:' || contact_id as record_key, 'crm' as source, contact_id as record_id,
            email, phone_e164, first_name, last_name, address_line1, postal_code,
            date_of_birth, time_zone, country_code
        from crm_contacts where not is_deleted
        union all
        select 'shop:' || shop_customer_id, 'shop', shop_customer_id, email, phone_e164,
            first_name, last_name, address_line1, postal_code, null, null, country_code
        from shop_customers
        union all
        select 'loyalty:' || member_id, 'loyalty', member_id, email, phone_e164, first_name,
            last_name, address_line1, postal_code, date_of_birth, null, null
        from loyalty_members
        union all
        select distinct 'web:' || anonymous_id, 'web', anonymous_id, null, null, null, null,
            null, null, null::date, null, null
        from web_events where anonymous_id is not null
    """)
    con.execute(f"""
        create or replace table id_links as
        select record_key, 'email:' || email as node_key from id_records where email is not null
        union all
        select record_key, 'phone:' || phone_e164 from id_records where phone_e164 is not null
        union all
        select record_key, 'name:' || lower(first_name || ' ' || last_name) || '@'
            || lower(regexp_replace(address_line1 || postal_code, '\\s', '', 'g'))
        from id_records
        where first_name is not null and last_name is not null
            and address_line1 is not null and postal_code is not null
        union all
        select 'loyalty:' || member_id, 'crm:' || crm_contact_id
        from loyalty_members where crm_contact_id is not null
        union all
        select distinct 'web:' || anonymous_id, 'shop:' || user_id
        from web_events
        where event_name = 'identify' and user_id is not null and occurred_at <= {as_of_end}
    """)
    con.execute("""
        create or replace table id_edges as
        select record_key as a, node_key as b from id_links
        union all select node_key, record_key from id_links
    """)
    con.execute("""
        create or replace table id_labels as
        select distinct a as node, a as label from id_edges
        union select record_key, record_key from id_records
    """)
    passes = 0
    while True:
        passes += 1
        con.execute("""
            create or replace table id_next as
            select l.node, least(l.label, coalesce(min(n.label), l.label)) as label
            from id_labels as l
            left join id_edges as e on l.node = e.a
            left join id_labels as n on e.b = n.node
            group by l.node, l.label
        """)
        changed = con.execute("""
            select count(*) from id_next join id_labels using (node)
            where id_next.label <> id_labels.label
        """).fetchone()[0]
        con.execute("create or replace table id_labels as select * from id_next")
        if not changed:
            break
    con.execute("""
        create or replace table customer_id_map as
        select r.record_key, r.source, r.record_id, md5(l.label) as customer_id
        from id_records as r join id_labels as l on r.record_key = l.node
    """)
    components = con.execute("select count(distinct customer_id) from customer_id_map").fetchone()[
        0
    ]
    return components, passes


def customer_360(con: duckdb.DuckDBPyConnection, as_of: dt.date, as_of_end: str) -> int:
    """customer_360 and the segment inputs (int_segments__events, int_segments__orders)."""
    zones = " ".join(f"when '{c}' then '{z}'" for c, z in DEFAULT_ZONES.items())
    day = "interval 1 day"
    con.execute(f"""
        create or replace table consent_state as
        select contact_point, channel, purpose,
            arg_max(status = 'granted' and coalesce(expires_at > {as_of_end}, true),
                    captured_at) as is_consented
        from consent_events where captured_at <= {as_of_end} and contact_point is not null
        group by all
    """)
    con.execute(f"""
        create or replace table customer_360 as
        with records as (
            select m.customer_id, r.* from id_records as r join customer_id_map as m using (record_key)
        ),
        golden as (
            select customer_id,
                any_value(email) filter (where email is not null) as email,
                any_value(phone_e164) filter (where phone_e164 is not null) as phone_e164,
                any_value(date_of_birth) filter (where date_of_birth is not null)
                    as date_of_birth,
                any_value(time_zone) filter (where time_zone is not null) as time_zone,
                any_value(country_code) filter (where country_code is not null) as country_code,
                bool_or(source = 'loyalty') as is_in_loyalty,
                count(*) as source_record_count
            from records group by customer_id
        ),
        order_stats as (
            select m.customer_id, count(*) as order_count, sum(o.total_amount) as lifetime_revenue,
                max(o.ordered_at) as last_ordered_at,
                count(*) filter (where o.ordered_at > {as_of_end} - 365 * {day})
                    as orders_last_365d
            from shop_orders as o
            join customer_id_map as m on m.source = 'shop' and m.record_id = o.shop_customer_id
            where o.is_revenue and o.ordered_at <= {as_of_end}
            group by m.customer_id
        ),
        emails as (select distinct customer_id, email from records where email is not null),
        phones as (
            select distinct customer_id, phone_e164 from records where phone_e164 is not null
        ),
        engagement as (
            select emails.customer_id,
                count(*) filter (where event_type = 'opened'
                    and occurred_at > {as_of_end} - 30 * {day}) as email_opens_30d,
                count(*) filter (where event_type = 'clicked') as email_clicks_90d
            from email_engagement as e join emails using (email)
            where e.occurred_at <= {as_of_end} and e.occurred_at > {as_of_end} - 90 * {day}
            group by emails.customer_id
        ),
        web as (
            select m.customer_id,
                count(*) filter (where event_name = 'session_start') as web_sessions_30d,
                count(*) filter (where event_name = 'cart_add') as cart_adds_30d
            from web_events as w
            join customer_id_map as m on m.source = 'web' and m.record_id = w.anonymous_id
            where w.occurred_at <= {as_of_end} and w.occurred_at > {as_of_end} - 30 * {day}
            group by m.customer_id
        ),
        erased_points as (
            select distinct contact_point from erasure_requests
            where updated_at <= {as_of_end} and contact_point is not null
        ),
        erased as (
            select customer_id from emails join erased_points on email = contact_point
            union
            select customer_id from phones join erased_points on phone_e164 = contact_point
        ),
        assembled as (
            select g.*,
                coalesce(g.time_zone, case g.country_code {zones} end, 'UTC') as zone,
                coalesce(o.order_count, 0) as order_count,
                coalesce(o.lifetime_revenue, 0) as lifetime_revenue, o.last_ordered_at,
                coalesce(o.orders_last_365d, 0) as orders_last_365d,
                coalesce(e.email_opens_30d, 0) as email_opens_30d,
                coalesce(e.email_clicks_90d, 0) as email_clicks_90d,
                coalesce(w.web_sessions_30d, 0) as web_sessions_30d,
                coalesce(w.cart_adds_30d, 0) as cart_adds_30d,
                x.customer_id is not null as is_erased,
                coalesce(sms.is_consented, false) as sms_consented
            from golden as g
            left join order_stats as o using (customer_id)
            left join engagement as e using (customer_id)
            left join web as w using (customer_id)
            left join erased as x using (customer_id)
            left join consent_state as sms on g.phone_e164 = sms.contact_point
                and sms.channel = 'sms' and sms.purpose = 'marketing'
        )
        select * exclude (time_zone) rename (zone as time_zone),
            date_diff('day', last_ordered_at, {as_of_end}) as days_since_last_order,
            month(date_of_birth) = {as_of.month} as is_birthday_month,
            phone_e164 is not null and not is_erased as is_sms_reachable,
            sms_consented and not is_erased as is_sms_marketing_consented,
            case when order_count > 0 then ntile(5) over (partition by order_count > 0
                order by last_ordered_at, customer_id) end as rfm_recency_score,
            case when order_count > 0 then ntile(5) over (partition by order_count > 0
                order by order_count, customer_id) end as rfm_frequency_score,
            case when order_count > 0 then ntile(5) over (partition by order_count > 0
                order by lifetime_revenue, customer_id) end as rfm_monetary_score
        from assembled
    """)
    local = "cast(timezone(c.time_zone, {}) as date)".format
    con.execute(f"""
        create or replace table int_segments__events as
        select * from (
            select m.customer_id, w.event_id, w.event_name, {local("w.occurred_at")} as local_date
            from web_events as w
            join customer_id_map as m on m.source = 'web' and m.record_id = w.anonymous_id
            join customer_360 as c using (customer_id)
            where w.occurred_at <= {as_of_end}
        ) where local_date <= date '{as_of}'
    """)
    con.execute(f"""
        create or replace table int_segments__orders as
        select * from (
            select m.customer_id, o.order_id, o.total_amount,
                {local("o.ordered_at")} as local_date
            from shop_orders as o
            join customer_id_map as m on m.source = 'shop' and m.record_id = o.shop_customer_id
            join customer_360 as c using (customer_id)
            where o.is_revenue and o.ordered_at <= {as_of_end}
        ) where local_date <= date '{as_of}'
    """)
    return con.execute("select count(*) from customer_360").fetchone()[0]


def segment_statements(text: str, as_of: dt.date) -> dict[str, str]:
    """segments_reference.sql split into {segment: SQL}, its date literals moved by as_of's
    distance from the as_of they are written for."""
    shift = as_of - SEGMENTS_AS_OF

    def moved(match: re.Match[str]) -> str:
        return f"date '{dt.date.fromisoformat(match.group(1)) + shift}'"

    statements = {}
    for chunk in re.split(r"^-- segment: ", text, flags=re.M)[1:]:
        name, _, body = chunk.partition("\n")
        statements[name.strip()] = re.sub(r"date '(\d{4}-\d{2}-\d{2})'", moved, body).strip()
    return statements


def segments(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dict[str, int]:
    members = {}
    for name, sql in segment_statements(REFERENCE_SQL.read_text(), as_of).items():
        con.execute(f"create or replace table segment_{name} as {sql.rstrip(';')}")
        members[name] = con.execute(f"select count(*) from segment_{name}").fetchone()[0]
    return members


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=SEGMENTS_AS_OF)
    parser.add_argument("--database", type=Path, help="DuckDB file (default: in memory)")
    args = parser.parse_args()

    if args.database is not None and args.database.exists():
        args.database.unlink()
    con = duckdb.connect(str(args.database) if args.database else ":memory:")
    # the same limits the pipeline reads, so both sides run under one budget
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from orchestration.warehouse import DEFAULT_MEMORY_LIMIT, MEMORY_ENV

    con.execute(f"set memory_limit = '{os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_LIMIT)}'")
    con.execute(f"set threads = {int(os.environ.get('C360_DUCKDB_THREADS', '2'))}")
    if os.environ.get("C360_DUCKDB_TEMP_DIR"):
        con.execute(f"set temp_directory = '{os.environ['C360_DUCKDB_TEMP_DIR']}'")
    as_of_end = f"timestamptz '{args.as_of} 23:59:59+00'"
    timings: dict[str, float] = {}
    started = total = time.monotonic()

    def lap(stage: str, detail: str) -> None:
        nonlocal started
        timings[stage] = time.monotonic() - started
        log(f"{stage}: {timings[stage]:.1f}s ({detail})")
        started = time.monotonic()

    raw = load(con, args.landing, args.as_of)
    lap("load", f"{sum(raw.values()):,} rows")
    typed = type_and_dedupe(con)
    lap("type + dedupe", f"{sum(typed.values()):,} rows kept")
    components, passes = identity(con, as_of_end)
    lap("identity", f"{components:,} customers, {passes} propagation passes")
    customers = customer_360(con, args.as_of, as_of_end)
    lap("customer_360", f"{customers:,} rows")
    members = segments(con, args.as_of)
    lap("segments", ", ".join(f"{k} {v:,}" for k, v in members.items()))
    log(f"reference total: {time.monotonic() - total:.1f}s; "
        + "; ".join(f"{k} {v:.1f}s" for k, v in timings.items()))  # fmt: skip
    con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
