"""Shop live extraction: the shop HTTP API read with dlt's `rest_api` resources.

dlt pages through the API with its cursor paginator (`next_cursor` → `?cursor=`), passes the range
as `updated_since` / `updated_before` (its incremental with start/end params, so it keeps no state),
and retries 429 / 5xx with its requests client, waiting what `Retry-After` says (capped by
C360_SHOP_MAX_RETRY_DELAY_SECONDS). Orders arrive with their `line_items`; the order-lines entity
is the same API read, flattened here (each line gets its order's `order_id`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from orchestration.contracts.model import Contract
from orchestration.extract.config import ShopConfig
from orchestration.extract.text import utc_text

ENDPOINTS = {"customers": "customers", "orders": "orders", "order_lines": "orders"}


def _resource(config: ShopConfig, endpoint: str, since: dt.datetime, until: dt.datetime):
    from dlt.sources.helpers.requests import Client
    from dlt.sources.rest_api import rest_api_resources

    session = Client(
        request_timeout=config.timeout,
        request_max_attempts=config.max_attempts,
        request_backoff_factor=0.5,
        request_max_retry_delay=config.max_retry_delay,
        respect_retry_after_header=True,
        raise_for_status=False,  # dlt's REST client raises after its retries
    ).session
    client: dict[str, Any] = {
        "base_url": config.api_url + "/",
        "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
        "session": session,
    }
    if config.token:
        client["auth"] = {"type": "bearer", "token": config.token}
    (resource,) = rest_api_resources(
        {
            "client": client,
            "resources": [
                {
                    "name": f"shop_{endpoint}",
                    "endpoint": {
                        "path": endpoint,
                        "data_selector": "data",
                        "params": {"limit": config.page_size},
                        "incremental": {
                            "cursor_path": "updated_at",
                            "start_param": "updated_since",
                            "end_param": "updated_before",
                            "initial_value": utc_text(since),
                            "end_value": utc_text(until),
                            "range_start": "closed",
                            "range_end": "open",
                        },
                    },
                }
            ],
        }
    )
    return resource


def extract_rows(
    config: ShopConfig, contract: Contract, since: dt.datetime, until: dt.datetime
) -> Iterator[dict[str, Any]]:
    """Records of `contract.entity` whose (order's) updated_at is in [since, until)."""
    endpoint = ENDPOINTS[contract.entity]
    for record in _resource(config, endpoint, since, until):
        if contract.entity != "order_lines":
            yield record
            continue
        for line in record.get("line_items") or []:
            yield {**line, "order_id": record.get("order_id")}
