"""Benchmark: a diff-based webhook sync of a 1M-member audience, end to end, on one machine.

Issue 6 target: a first sync of a 1M-member audience to the local webhook at >= 50k rows/s,
counting the activation.sync_state and activation.contact_history writes; an unchanged re-sync
sends 0 rows and takes <= 1.2x the planner's scan.

The input is synthesised (deterministic, hash-based) straight into a temporary DuckDB warehouse
file — the marts the sync reads, not the pipeline that builds them: marts.customer_360 (id,
email, phone, names with some non-ASCII, lifetime_revenue as decimal(18,2), is_erased),
marts.segment_membership (the audience with a 5 % holdout, and a second segment),
marts.consent_state (email/marketing for ~99.5 % of addresses: granted, ~1 % revoked, ~0.5 %
expired, ~0.5 % suppressed; product_updates rows too), marts.customer_id_history (retired ids).
About 97 % of the audience is consented; the rest is filtered with a reason (no email, erased, no
consent record, revoked, expired, suppressed).

The destination runs in its own process on loopback (its CPU and its million stored records are
not the sync's): `--server test` is the contract test server (tests/webhook_server.py, no
faults); `--server lean` follows the same contract with less work per row (see LEAN_SERVER) — on
a 2-core machine the test server's CPU is taken from the sync. The sync uses WebhookClient with
1,000-row batches and run_diff_sync's default chunk size.

Timed, on the same warehouse:
  (a) the first sync, run_diff_sync end to end (plan, diff, send, sync_state, contact_history,
      sync_runs, and the checkpoint its writes bring): rows/s over the rows sent;
  (b) the planner's scan alone: the consent-checked audience (build_plan), the desired and
      withdrawn relations and the diff against the acknowledged state, counted by action — what
      any run must read to know what to send;
  (c) an unchanged re-sync, run_diff_sync end to end: must send 0 rows; its time / (b).
(b) and (c) start from a checkpointed warehouse; with --repeat, the best of each is kept. The
destination's stored state is checked after (a): exactly the consented, non-holdout audience,
each row applied once, every row in sync_state and contact_history.

    .venv/bin/python bench/activation_sync.py --members 1000000 [--server lean]

Prints the figures and ratios (no timing pass/fail); exits 1 if the destination's state is wrong
or the unchanged re-sync sent anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas  # noqa: F401  (imported by any pipeline process; pyarrow imports it on first use)

from orchestration.activation.destinations.webhook import WebhookClient, WebhookConfig
from orchestration.activation.diff import diff_sql
from orchestration.activation.diff_runner import _desired_rows, _withdrawn_rows, run_diff_sync
from orchestration.activation.planner import PLAN_TABLE, build_plan
from orchestration.activation.sync_definition import SyncDefinition

AS_OF = dt.date(2026, 11, 21)
SECRET = "bench-secret-not-a-real-one"
SEGMENT = "bench_audience"
TARGET_ROWS_PER_SECOND = 50_000
TARGET_RESYNC_RATIO = 1.2
REPO = Path(__file__).resolve().parents[1]

SYNC = SyncDefinition(
    name="webhook__bench_audience",
    segment=SEGMENT,
    destination="webhook",
    channel="email",
    purpose="marketing",
    fields={"email": "email", "first_name": "first_name", "lifetime_revenue": "lifetime_revenue"},
    mode="upsert",
    file_format="csv",
    path=Path("bench/webhook__bench_audience.yml"),
    identifier="customer_id",
    batch_rows=1000,
    batch_bytes=1_000_000,
)

# The destination, in a child process: its CPU and its stored records are not the sync's. It
# prints its URL, then answers `stats` on stdin with its stored state and its CPU time.
SERVER = """
import json, resource, sys
{server}
print(server.url, flush=True)
for line in sys.stdin:
    if line.strip() != "stats":
        break
    with server.state.lock:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({{
            "records": len(server.state.records),
            "applications": server.state.applications,
            "batch_requests": server.batch_requests,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,
        }}), flush=True)
"""
# --server test: the contract test server (tests/webhook_server.py), no faults
TEST_SERVER = """
from tests.webhook_server import WebhookServer
server = WebhookServer(sys.argv[1]).__enter__()
"""
# --server lean: the same contract for a fault-free run (HMAC signature checked, 401 / 413 / 400
# as the test server answers them, each idempotency key applied once, rows whose email has no @
# rejected, records stored and readable back), with less work per row (no request log, no fault
# draws, results written as text), HTTP/1.1 keep-alive and TCP_NODELAY: less CPU taken from the
# sync on a small machine, and no request stalled on Nagle's algorithm.
LEAN_SERVER = """
import hashlib, hmac, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_ROWS, MAX_BYTES = 1000, 1_000_000
SECRET = sys.argv[1].encode()


# one batch at a time, in arrival order (as a destination serialising an account's writes):
# with two batches in flight, the next one waits whole instead of sharing the interpreter with
# the current one, so answers come back one by one and the client always has one in flight
ONE_BATCH_AT_A_TIME = threading.Lock()


class State:
    def __init__(self):
        self.records, self.applied_keys, self.applications = {}, set(), 0
        self.lock = threading.Lock()


def result(key, status, reason=None):
    key = '"%s"' % key if key.isalnum() else json.dumps(key)  # our keys are hex digests
    text = '{"idempotency_key":%s,"status":"%s"' % (key, status)
    return text + (',"reason":%s}' % json.dumps(reason) if reason else "}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as production HTTP servers set it: the stdlib handler writes the headers and
    # the body in two sends, and without it the body waited for the client's delayed ACK
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        record = server.state.records.get(self.path.removeprefix("/v1/records/"))
        if not self.path.startswith("/v1/records/") or record is None:
            return self.answer(404, {"error": "not found"})
        key, fields = record
        ident = self.path.removeprefix("/v1/records/")
        return self.answer(200, {"identifier": ident, "fields": fields, "idempotency_key": key})

    def do_POST(self):
        with ONE_BATCH_AT_A_TIME:
            return self.post()

    def post(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/batches":
            return self.answer(404, {"error": "no such path"})
        server.batch_requests += 1
        expected = "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(self.headers.get("X-C360-Signature", ""), expected):
            return self.answer(401, {"error": "bad signature"})
        if len(raw) > MAX_BYTES:
            return self.answer(413, {"error": f"body over {MAX_BYTES} bytes"})
        try:
            rows = json.loads(raw)["rows"]
            assert isinstance(rows, list)
            keys = [r["idempotency_key"] for r in rows]
        except (ValueError, KeyError, TypeError, AssertionError):
            return self.answer(400, {"error": "malformed batch"})
        if len(rows) > MAX_ROWS:
            return self.answer(413, {"error": f"over {MAX_ROWS} rows"})
        state, results = server.state, []
        with state.lock:
            for key, row in zip(keys, rows):
                if key in state.applied_keys:
                    results.append(result(key, "ok"))
                    continue
                ident, fields = row.get("identifier"), row.get("fields") or {}
                if not ident or "@" not in str(fields.get("email", "@")):
                    results.append(result(key, "rejected", "invalid email"))
                    continue
                if row.get("op") == "delete":
                    state.records.pop(ident, None)
                else:
                    state.records[ident] = (key, fields)
                state.applied_keys.add(key)
                state.applications += 1
                results.append(result(key, "ok"))
        self.answer(200, ('{"results":[' + ",".join(results) + "]}").encode())


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.state, server.batch_requests = State(), 0
server.url = f"http://127.0.0.1:{server.server_address[1]}"
threading.Thread(target=server.serve_forever, daemon=True).start()
"""
SERVERS = {"test": TEST_SERVER, "lean": LEAN_SERVER}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def uniform(key: str, salt: str) -> str:
    """SQL of a uniform draw in [0, 1) from a hash: the same data at every run and thread count."""
    return f"((hash({key}, '{salt}') % 1000000) / 1e6)"


def synthesise(con: duckdb.DuckDBPyConnection, members: int) -> None:
    """The marts a webhook sync reads, for `members` audience members (plus 10 % non-members)."""
    customers = members + members // 10
    con.execute("create schema marts")
    con.execute("create schema activation")  # the pipeline creates it
    con.execute(
        f"""
        create table marts.customer_360 as
        select
            'c_' || lpad(cast(i as varchar), 9, '0') as customer_id,
            (['Anna', 'Ben', 'Chloé', 'Dmitri', 'Eva', 'François', 'Grace', 'Hiro', 'Zoë',
              'Jonas'])[1 + i % 10] as first_name,
            'Person' || cast(i % 997 as varchar) as last_name,
            case when {uniform("i", "email")} >= 0.004
                then 'person' || cast(i as varchar) || '@example.org' end as email,
            '+4930' || lpad(cast(i as varchar), 9, '0') as phone,
            case when {uniform("i", "buyer")} < 0.7
                then cast(round({uniform("i", "revenue")} * 2000, 2) as decimal(18, 2))
            end as lifetime_revenue,
            {uniform("i", "erased")} < 0.002 as is_erased,
            date '{AS_OF}' as as_of
        from range({customers}) as t(i)
        """
    )
    con.execute(
        f"""
        create table marts.segment_membership as
        select
            '{SEGMENT}' as segment_name,
            customer_id,
            hash(customer_id || '{SEGMENT}') % 100 < 5 as is_holdout,
            date '{AS_OF}' as as_of
        from marts.customer_360
        where customer_id < 'c_' || lpad('{members}', 9, '0')
        union all
        select 'other_segment', customer_id, false, date '{AS_OF}'
        from marts.customer_360 where hash(customer_id) % 5 = 0
        """
    )
    # email/marketing consent: ~0.5 % no record, ~1 % revoked, ~0.5 % expired, ~0.5 % suppressed
    con.execute(
        f"""
        create table marts.consent_state as
        with points as (
            select
                email as contact_point,
                {uniform("email", "consent")} as r,
                {uniform("email", "captured")} as p,
                is_erased
            from marts.customer_360 where email is not null
        ),

        marketing as (
            select
                contact_point,
                'email' as contact_point_type,
                'email' as channel,
                'marketing' as purpose,
                case when r < 0.01 then 'revoked' else 'granted' end as consent_status,
                timestamp '2025-01-01' + to_seconds(cast(p * 3e7 as bigint))
                    as consent_captured_at,
                r >= 0.01 and r < 0.015 as is_expired,
                r >= 0.015 and r < 0.02 as is_suppressed,
                is_erased
            from points
            where r < 0.995
        ),

        product as (
            select contact_point, 'email', 'email', 'product_updates', 'granted',
                timestamp '2025-06-01', false, false, is_erased
            from points where p < 0.5
        )

        select
            *,
            consent_status = 'granted' and not is_expired and not is_suppressed and not is_erased
                as is_consented,
            date '{AS_OF}' as as_of
        from (select * from marketing union all select * from product)
        """
    )
    con.execute(
        f"""
        create table marts.customer_id_history as
        select
            'c_r' || lpad(cast(i as varchar), 8, '0') as retired_customer_id,
            'c_' || lpad(cast(i * 7 % {customers} as varchar), 9, '0') as current_customer_id
        from range({max(members // 50, 1)}) as t(i)
        """
    )


def expected_audience(con: duckdb.DuckDBPyConnection) -> int:
    """Consented, reachable, not erased, not held out — from the marts, not the sync's report."""
    return con.execute(
        f"""
        select count(*)
        from marts.segment_membership as m
        inner join marts.customer_360 as c on m.customer_id = c.customer_id
        inner join marts.consent_state as s
            on s.contact_point = c.email and s.channel = 'email' and s.purpose = 'marketing'
        where m.segment_name = '{SEGMENT}' and not m.is_holdout and not c.is_erased
            and s.consent_status = 'granted' and s.is_consented and not s.is_suppressed
            and not s.is_expired
        """
    ).fetchone()[0]


def planner_scan(con: duckdb.DuckDBPyConnection) -> tuple[float, dict[str, int]]:
    """(b): the consent-checked audience, the desired and withdrawn rows, and the diff against
    the acknowledged state counted by action — the reads every run of the sync needs."""
    start = time.perf_counter()
    build_plan(con, SYNC, AS_OF, skip_recorded=False)
    _desired_rows(con, SYNC)
    _withdrawn_rows(con, SYNC, AS_OF)
    sql = diff_sql(
        SYNC.name, "sync_desired", "identifier_value", list(SYNC.fields), SYNC.mode,
        withdrawn_relation="sync_withdrawn",
    )  # fmt: skip
    counts = dict(con.execute(f"select action, count(*) from ({sql}) group by 1").fetchall())
    elapsed = time.perf_counter() - start
    con.execute(f"drop table if exists {PLAN_TABLE}")
    return elapsed, counts


class Server:
    """The contract test server in a child process (its CPU and memory are its own)."""

    def __init__(self, kind: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER.format(server=SERVERS[kind]), SECRET],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.url = self.process.stdout.readline().strip()

    def stats(self) -> dict:
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def connect(path: Path, threads: int, memory_limit: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(f"set threads = {threads}")
    con.execute(f"set memory_limit = '{memory_limit}'")
    return con


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument(
        "--server", choices=sorted(SERVERS), default="test",
        help="the destination: the contract test server or a leaner one (same contract)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="(b) and (c) runs; the best counts")
    parser.add_argument("--synthesise-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.synthesise_only:  # in a child process, so its memory is not the sync's peak
        with connect(args.synthesise_only, args.threads, args.memory_limit) as con:
            synthesise(con, args.members)
        return 0

    log(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores, "
        f"duckdb {duckdb.__version__}, threads {args.threads}, memory_limit {args.memory_limit}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="c360-bench-sync-") as tmp:
        warehouse = Path(tmp) / "warehouse.duckdb"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--members", str(args.members), "--threads",
             str(args.threads), "--memory-limit", args.memory_limit, "--synthesise-only",
             str(warehouse)],
            check=True, cwd=REPO,
        )  # fmt: skip
        log(f"synthesised {args.members:,} members in {time.perf_counter() - start:.1f}s")
        server = Server(args.server)
        try:
            return run(args, warehouse, server)
        finally:
            server.close()


def run(args: argparse.Namespace, warehouse: Path, server: Server) -> int:
    ok = True
    config = WebhookConfig(server.url, SECRET, max_rows=1000, max_bytes=1_000_000)
    client = WebhookClient(config, SYNC.name)
    with connect(warehouse, args.threads, args.memory_limit) as con:
        expected = expected_audience(con)
        log(f"expected at the destination: {expected:,} rows; server at {server.url}")

        # (a) first sync
        cpu, start = cpu_seconds(), time.perf_counter()
        first = run_diff_sync(con, SYNC, AS_OF, "bench-run-1", client)
        first_s, first_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        stats = server.stats()
        rate = first.sent / first_s
        log(f"(a) first sync: {first.sent:,} rows sent in {first_s:.2f}s = {rate:,.0f} rows/s "
            f"(sync process CPU {first_cpu:.1f}s, server CPU {stats['cpu_seconds']:.1f}s, "
            f"{stats['batch_requests']:,} requests)")  # fmt: skip
        history, in_state = con.execute(
            "select (select count(*) from activation.contact_history where run_id = 'bench-run-1'),"
            " (select count(*) from activation.sync_state where sync_id = ? and status = 'ok')",
            [SYNC.name],
        ).fetchone()
        right = (
            stats["records"] == expected == stats["applications"] == first.ok == in_state
            and history == first.audience_rows
        )
        ok &= right
        log(f"destination holds {stats['records']:,} records ({stats['applications']:,} "
            f"applications), sync_state ok {in_state:,}, contact_history {history:,} rows for "
            f"{first.audience_rows:,} members (held out {first.held_out:,}, filtered "
            f"{first.filtered:,}: {first.filtered_by_reason}): "
            f"{'exactly the audience' if right else 'WRONG'}")  # fmt: skip

        # (b) the planner's scan, on the acknowledged state the re-sync diffs against, and (c)
        # the unchanged re-sync; each from a checkpointed warehouse (no WAL left to fold in)
        scans, resyncs, sent_again = [], [], 0
        for attempt in range(args.repeat):
            con.execute("checkpoint")
            scan_s, counts = planner_scan(con)
            scans.append(scan_s)
            log(f"(b) planner scan: {scan_s:.2f}s ({counts})")
            requests_before = server.stats()["batch_requests"]
            con.execute("checkpoint")
            start = time.perf_counter()
            again = run_diff_sync(con, SYNC, AS_OF, f"bench-run-{attempt + 2}", client)
            resyncs.append(time.perf_counter() - start)
            requests = server.stats()["batch_requests"] - requests_before
            sent_again += again.sent + requests
            log(f"(c) unchanged re-sync: {again.sent} rows sent, {requests} requests, "
                f"{resyncs[-1]:.2f}s = {resyncs[-1] / scan_s:.2f}x the planner scan")  # fmt: skip
        nothing_sent = sent_again == 0
        ok &= nothing_sent
        scan_s, resync_s = min(scans), min(resyncs)
    server_stats = server.stats()

    ratio = resync_s / scan_s
    print()
    print(f"=== activation sync benchmark: {args.members:,} members, webhook on loopback "
          f"({args.server} server), duckdb threads {args.threads}, memory_limit "
          f"{args.memory_limit}, load average {os.getloadavg()[0]:.2f} ===")  # fmt: skip
    print(f"first sync        {first.sent:>9,} rows sent  {first_s:8.2f}s  {rate:>9,.0f} rows/s"
          f"  (target >= {TARGET_ROWS_PER_SECOND:,})  sync CPU {first_cpu:.1f}s, "
          f"server CPU {stats['cpu_seconds']:.1f}s")  # fmt: skip
    print(f"planner scan      {sum(counts.values()):>9,} rows       {scan_s:8.2f}s")
    print(f"unchanged re-sync {0 if nothing_sent else sent_again:>9,} rows sent  "
          f"{resync_s:8.2f}s  {ratio:9.2f}x the scan  (target <= {TARGET_RESYNC_RATIO:g}x)")  # fmt: skip
    print(f"peak RSS: sync process {peak_rss_mb():,.0f} MB, server process "
          f"{server_stats['peak_rss_mb']:,.0f} MB")  # fmt: skip
    print(f"checks: destination holds exactly the audience, each row applied once, state and "
          f"history complete: {'yes' if right else 'NO'}; unchanged re-sync sent nothing: "
          f"{'yes' if nothing_sent else 'NO'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
