"""Benchmark: every shipped segment's compiled SQL against hand-written reference SQL
(bench/segments_reference.sql), on one DuckDB connection, over a 1M-customer profile.

The profile is synthesised in DuckDB (seeded): customer_360 traits and the int_segments__* inputs
(events with local dates, revenue orders, order lines) with per-customer volumes like the
generator's demo (≈ 7 web events and 2 orders per customer over a year). dbt start-up is not in
the figure: the compiled SQL is what `c360 segments compile` writes, rendered as dbt renders it
on DuckDB. Each side runs every segment into a temp table; the member sets are checked equal.

    .venv/bin/python bench/segments.py --customers 1000000

Exits 1 if a segment's compiled and reference member sets differ.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
from pathlib import Path

import duckdb

from orchestration.segments.compiler import render
from orchestration.segments.model import load_all, load_global, segment_references
from orchestration.segments.render import render_duckdb

AS_OF = "2026-11-21"
TARGET_RATIO = 2.0
REFERENCE = Path(__file__).with_name("segments_reference.sql")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def synthesise(con: duckdb.DuckDBPyConnection, customers: int, seed: float) -> None:
    con.execute(f"select setseed({seed})")
    con.execute(
        f"""
        create table customer_360 as
        select
            'c_' || lpad(cast(i as varchar), 9, '0') as customer_id,
            (['UTC', 'Europe/Berlin', 'America/New_York', 'Europe/London'])[1 + i % 4] as time_zone,
            random() < 0.002 as is_erased,
            case when random() < 0.6 then round(random() * 2000, 2) end as lifetime_revenue,
            case when random() < 0.6 then cast(random() * 700 as bigint) end as days_since_last_order,
            cast(random() * 6 as bigint) as email_clicks_90d,
            cast(random() * 8 as bigint) as email_opens_30d,
            case when random() < 0.6 then 1 + cast(random() * 5 as integer) % 5 end
                as rfm_monetary_score,
            case when random() < 0.6 then 1 + cast(random() * 5 as integer) % 5 end
                as rfm_frequency_score,
            case when random() < 0.6 then 1 + cast(random() * 5 as integer) % 5 end
                as rfm_recency_score,
            random() < 0.25 as is_in_loyalty,
            random() < 0.7 as is_sms_reachable,
            random() < 0.5 as is_sms_marketing_consented,
            case when random() < 0.7 then random() < 1.0 / 12 end as is_birthday_month,
            date '{AS_OF}' as as_of
        from range({customers}) as t(i)
        """
    )
    # a customer_id drawn at random from the synthesised customers (events and orders)
    any_customer = f"'c_' || lpad(cast(cast(random() * {customers} as bigint) as varchar), 9, '0')"
    events = customers * 7
    con.execute(
        f"""
        create table int_segments__events as
        select
            {any_customer} as customer_id,
            'e' || cast(i as varchar) as event_id,
            (['page', 'product_viewed', 'session_start', 'cart_add', 'feature_used',
              'checkout'])[1 + cast(random() * 6 as integer) % 6] as event_name,
            '{{"sku": "A"}}' as properties,
            date '{AS_OF}' - cast(random() * random() * 365 as integer) as local_date
        from range({events}) as t(i)
        """
    )
    orders = customers * 2
    con.execute(
        f"""
        create table int_segments__orders as
        select
            {any_customer} as customer_id,
            'o' || cast(i as varchar) as order_id,
            cast(round(5 + random() * 300, 2) as decimal(18, 2)) as total_amount,
            date '{AS_OF}' - cast(random() * 730 as integer) as local_date
        from range({orders}) as t(i)
        """
    )
    con.execute(
        """
        create table int_segments__order_lines as
        select order_id, order_id || '-1' as order_line_id, 'p1' as product_id,
            'shoes' as product_category, total_amount as line_amount
        from int_segments__orders
        """
    )


def compiled_segments() -> dict[str, str]:
    """Each shipped segment's compiled SQL, rendered for DuckDB with the bench's table names."""
    out = {}
    for path, text in render(load_all(), load_global()).items():
        name = path.stem.removeprefix("segment__")
        if path.stem.startswith("segment__"):
            out[name] = render_duckdb(text, lambda ref: ref, dt.date.fromisoformat(AS_OF))
    return out


def build_order() -> list[str]:
    """Shipped segments, each after the segments it refers to."""
    segments = {s.name: s for s in load_all()}
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        seg = segments[name]
        for other in sorted(set(seg.exclude_segments) | segment_references(seg.condition)):
            visit(other)
        done.append(name)

    for name in sorted(segments):
        visit(name)
    return done


def reference_segments() -> dict[str, str]:
    text = REFERENCE.read_text()
    parts = re.split(r"^-- segment: (\w+)\n", text, flags=re.M)[1:]
    return {
        name: sql.strip().rstrip(";") for name, sql in zip(parts[::2], parts[1::2], strict=True)
    }


def timed(con: duckdb.DuckDBPyConnection, table: str, sql: str) -> float:
    start = time.perf_counter()
    con.execute(f"create or replace temp table {table} as {sql}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; the best counts")
    args = parser.parse_args(argv)

    compiled, reference = compiled_segments(), reference_segments()
    if set(compiled) != set(reference):
        print(f"segments without a reference or vice versa: {set(compiled) ^ set(reference)}")
        return 1
    con = duckdb.connect()
    con.execute(f"set threads = {args.threads}")
    con.execute(f"set memory_limit = '{args.memory_limit}'")
    log(f"synthesising {args.customers:,} customers, duckdb {duckdb.__version__} ...")
    start = time.perf_counter()
    synthesise(con, args.customers, 0.42)
    sizes = {
        t: con.execute(f"select count(*) from {t}").fetchone()[0]
        for t in ("customer_360", "int_segments__events", "int_segments__orders")
    }
    log(f"synthesised in {time.perf_counter() - start:.1f}s: {sizes}")

    rows = []
    ok = True
    for name in build_order():
        best_c = min(timed(con, "compiled", compiled[name]) for _ in range(args.repeat))
        best_r = min(timed(con, "reference", reference[name]) for _ in range(args.repeat))
        members, only_c, only_r = con.execute(
            "select (select count(*) from compiled),"
            " (select count(*) from (select customer_id from compiled"
            "  except select customer_id from reference)),"
            " (select count(*) from (select customer_id from reference"
            "  except select customer_id from compiled))"
        ).fetchone()
        same = only_c == only_r == 0
        # later segments may refer to this one (exclude_segments, segment conditions)
        con.execute(f"create or replace temp table segment__{name} as select * from compiled")
        ok &= same
        rows.append((name, members, best_c, best_r, same))
        log(
            f"{name}: {members:,} members; compiled {best_c:.3f}s, reference {best_r:.3f}s"
            f" ({best_c / best_r:.2f}x){'' if same else f'; DIFFER: {only_c} / {only_r}'}"
        )
    total_c = sum(r[2] for r in rows)
    total_r = sum(r[3] for r in rows)
    print()
    print(f"=== segments benchmark: {args.customers:,} customers, {len(rows)} segments ===")
    print("segment                    members   compiled  reference  ratio  same")
    for name, members, c, r, same in rows:
        print(
            f"{name:24s} {members:>9,}  {c:8.3f}s  {r:8.3f}s  {c / r:5.2f}  {'yes' if same else 'NO'}"
        )
    ratio = total_c / total_r
    verdict = "OK" if ratio <= TARGET_RATIO else "MISSED"
    print(f"all segments: compiled {total_c:.2f}s, reference {total_r:.2f}s, ratio {ratio:.2f}x"
          f" (target <= {TARGET_RATIO:g}x: {verdict}); member sets {'equal' if ok else 'DIFFER'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
