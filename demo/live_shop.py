"""A local shop HTTP API serving generated data, for live-mode extraction and its tests.

Real HTTP (stdlib ThreadingHTTPServer on 127.0.0.1), documented behaviour:

* `GET /customers`, `GET /orders` → `{"data": [...], "next_cursor": "<opaque>" | null}`; orders
  carry their `line_items` (each line without `order_id`, as shop APIs embed them).
* Query: `updated_since` (inclusive, ISO 8601), `updated_before` (exclusive), `limit` (1-500,
  default 100), `cursor` (from the previous page). Rows come in (updated_at, id) order; the cursor is
  a keyset position, so a row updated between two pages is never skipped within the range.
* An order's `updated_at` is never earlier than any of its lines' (a line change touches the order).
* `Authorization: Bearer <token>` when the server has a token (401 otherwise).
* Rate limiting: every `rate_limit_every`-th request is answered 429 with `Retry-After:
  <retry_after>` seconds and not served (0 = never).
* A request log (`requests`, and a JSON-lines file when `log_path` is set): time, path, query,
  status, Retry-After — no response bodies, no tokens, no personal data.

Data: the latest version per id of the generated `shop/{customers,orders,order_lines}` landing
files (`load_landing`), changed by tests through `upsert_customer` / `upsert_order`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from orchestration.contracts.rules_sql import quote_literal
from orchestration.ingest.landing import glob_escaped
from orchestration.warehouse import scratch

MAX_LIMIT = 500
ENTITY_IDS = {"customers": "shop_customer_id", "orders": "order_id"}


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (no bodies, no credentials)."""

    at: float  # time.time() when the request arrived
    path: str
    query: dict[str, str]
    status: int
    retry_after: int | None = None
    rows: int = 0


@dataclass
class ShopStore:
    """Current state of the shop: one dict per customer / order (orders hold `line_items`)."""

    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def rows(self, entity: str) -> list[dict[str, Any]]:
        with self.lock:
            table = self.customers if entity == "customers" else self.orders
            return [dict(r) for r in table.values()]


def _latest(path_glob: list[Path], key: str) -> dict[str, dict[str, Any]]:
    """Latest version per `key` (by updated_at, later line wins a tie) of JSON-lines files."""
    out: dict[str, dict[str, Any]] = {}
    if not path_glob:
        return out
    # each file by its glob-escaped name: DuckDB reads `part[1].jsonl` as a glob (`part1.jsonl`)
    files = ", ".join(quote_literal(glob_escaped(p)) for p in path_glob)
    with scratch() as con:
        cur = con.execute(
            f"select json from read_ndjson_objects([{files}], filename=true) "
            "qualify row_number() over (partition by json ->> "
            f"{quote_literal(key)} order by json ->> 'updated_at' desc nulls last, filename desc) = 1"
        )
        for (text,) in cur.fetchall():
            row = json.loads(text)
            out[row[key]] = row
    return out


def load_landing(landing_dir: Path) -> ShopStore:
    """The shop's current state from generated landing files (`<landing>/shop/<entity>/**`)."""
    root = Path(landing_dir) / "shop"

    def files(entity: str) -> list[Path]:
        return sorted((root / entity).rglob("*.jsonl")) if (root / entity).exists() else []

    customers = _latest(files("customers"), "shop_customer_id")
    orders = _latest(files("orders"), "order_id")
    lines = _latest(files("order_lines"), "order_line_id")
    by_order: dict[str, list[dict[str, Any]]] = {}
    for line in sorted(lines.values(), key=lambda r: r["order_line_id"]):
        item = {k: v for k, v in line.items() if k != "order_id"}
        if item.get("quantity") is not None:
            item["quantity"] = int(item["quantity"])  # a JSON number, as APIs send counts
        by_order.setdefault(line["order_id"], []).append(item)
    for order_id, order in orders.items():
        order["line_items"] = by_order.get(order_id, [])
    return ShopStore(customers, orders)


def _encode_cursor(updated_at: str, row_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at, row_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, str]:
    updated_at, row_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    return str(updated_at), str(row_id)


def _instant(text: str) -> str:
    """ISO 8601 → comparable UTC text 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'."""
    import datetime as dt

    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(fmt)


def _sort_key(row: dict[str, Any], id_key: str) -> tuple[str, str]:
    return (_instant(row["updated_at"]) if row.get("updated_at") else "", row[id_key])


class ShopApiServer:
    """The shop API on a free loopback port. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        store: ShopStore,
        token: str | None = None,
        rate_limit_every: int = 0,
        retry_after: int = 1,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.store = store
        self.token = token
        self.rate_limit_every = rate_limit_every
        self.retry_after = retry_after
        self.log_path = Path(log_path) if log_path else None
        self.requests: list[RequestRecord] = []
        self._count = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ShopApiServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ShopApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- data changes (tests, demos) ---------------------------------------------------------
    def upsert_customer(self, row: dict[str, Any]) -> None:
        with self.store.lock:
            self.store.customers[row["shop_customer_id"]] = dict(row)

    def upsert_order(self, row: dict[str, Any]) -> None:
        with self.store.lock:
            self.store.orders[row["order_id"]] = dict(row)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- serving -----------------------------------------------------------------------------
    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)
            if self.log_path:
                with self.log_path.open("a") as fh:
                    fh.write(json.dumps(asdict(rec)) + "\n")

    def _next_is_limited(self) -> bool:
        with self._lock:
            self._count += 1
            return bool(self.rate_limit_every) and self._count % self.rate_limit_every == 0

    def page(self, entity: str, query: dict[str, str]) -> dict[str, Any]:
        """One page of `entity` for the query (the response body)."""
        id_key = ENTITY_IDS[entity]
        limit = max(1, min(int(query.get("limit", 100)), MAX_LIMIT))
        since = _instant(query["updated_since"]) if query.get("updated_since") else None
        before = _instant(query["updated_before"]) if query.get("updated_before") else None
        after = _decode_cursor(query["cursor"]) if query.get("cursor") else None
        rows = sorted(self.store.rows(entity), key=lambda r: _sort_key(r, id_key))
        chosen = []
        for row in rows:
            key = _sort_key(row, id_key)
            if since is not None and key[0] < since:
                continue
            if before is not None and key[0] >= before:
                continue
            if after is not None and key <= after:
                continue
            chosen.append(row)
            if len(chosen) > limit:
                break
        more = len(chosen) > limit
        chosen = chosen[:limit]
        last = chosen[-1] if chosen else None
        next_cursor = _encode_cursor(*_sort_key(last, id_key)) if more and last else None
        return {"data": chosen, "next_cursor": next_cursor}

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # the request log replaces stderr lines
                pass

            def _send(self, status: int, body: dict, headers: dict[str, str] | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                arrived = time.time()
                parsed = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                entity = parsed.path.strip("/")
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    server._record(RequestRecord(arrived, parsed.path, query, 401))
                    return self._send(401, {"error": "unauthorized"})
                if entity not in ENTITY_IDS:
                    server._record(RequestRecord(arrived, parsed.path, query, 404))
                    return self._send(404, {"error": f"no such resource {parsed.path}"})
                if server._next_is_limited():
                    server._record(
                        RequestRecord(arrived, parsed.path, query, 429, server.retry_after)
                    )
                    return self._send(
                        429, {"error": "rate limited"}, {"Retry-After": str(server.retry_after)}
                    )
                try:
                    body = server.page(entity, query)
                except (ValueError, KeyError, TypeError) as exc:
                    server._record(RequestRecord(arrived, parsed.path, query, 400))
                    return self._send(400, {"error": f"bad query: {type(exc).__name__}"})
                server._record(
                    RequestRecord(arrived, parsed.path, query, 200, None, len(body["data"]))
                )
                return self._send(200, body)

        return Handler


def main(argv: list[str] | None = None) -> int:
    """`python -m demo.live_shop --landing DIR [--port P]`: serve until Ctrl-C.

    The token comes from C360_SHOP_API_TOKEN (none = no auth); never from the command line.
    """
    import argparse
    import os

    from orchestration.paths import landing_dir

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--landing", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rate-limit-every", type=int, default=0)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--log", type=Path, default=None, help="request log (JSON lines)")
    args = parser.parse_args(argv)
    store = load_landing(args.landing or landing_dir())
    server = ShopApiServer(
        store,
        token=os.environ.get("C360_SHOP_API_TOKEN") or None,
        rate_limit_every=args.rate_limit_every,
        retry_after=args.retry_after,
        log_path=args.log,
        port=args.port,
    ).start()
    print(f"shop API on {server.url}: {len(store.customers)} customers, {len(store.orders)} orders")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
