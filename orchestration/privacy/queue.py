"""`c360 erase`: queue an erasure request where the consent source's requests go.

The request is one row of a landing file of `consent/erasure_requests` (columns as in
data_contracts/sources/consent__erasure_requests.odcs.yaml), so it takes the same road as a
request from the preference centre: ingestion (contract, quarantine), then the erasure step of
the nightly whose as_of covers its `requested_at`. The file goes under `dt=<as_of>/`; its id
starts with `CLI-` (the receipt's source says `cli`).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import uuid
from pathlib import Path

from orchestration.privacy.erasure import CLI_PREFIX


def queue_request(
    landing: Path, kind: str, value: str, as_of: dt.date, now: dt.datetime | None = None
) -> tuple[str, Path]:
    """Write one erasure request (kind: email, phone or customer_id) for the nightly of `as_of`;
    returns its id and file. requested_at is now, or the last second of as_of when now is later."""
    if kind not in ("email", "phone", "customer_id"):
        raise ValueError(f"kind must be email, phone or customer_id, not {kind!r}")
    if not value.strip():
        raise ValueError(f"an empty {kind}")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    last = dt.datetime.combine(as_of, dt.time(23, 59, 59))
    at = min(now, last)
    request_id = f"{CLI_PREFIX}{uuid.uuid4().hex[:12].upper()}"
    folder = landing / "consent" / "erasure_requests" / f"dt={as_of.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"cli-erasure-{request_id[len(CLI_PREFIX) :].lower()}.csv"
    tmp = folder / f".{path.name}.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["erasure_request_id", "contact_point", "contact_point_type", "requested_at"])
        w.writerow([request_id, value.strip(), kind, at.strftime("%Y-%m-%dT%H:%M:%SZ")])
    os.replace(tmp, path)  # the landing scan never sees half a file
    return request_id, path
