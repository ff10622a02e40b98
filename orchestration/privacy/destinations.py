"""Send an erased person's delete to every destination that holds them, and collect the answers.

Who holds the person: `activation.sync_state` rows (not `removed`) of the person's customer ids
or identifiers. Per sync: a destination whose client has `delete(identifiers)` (registry
`deletes=True`) erases the person there; any other diff destination gets the removal from the
sync's audience (a `delete` row through `send`). File destinations (file_drop) hold the person in
their dropped files, which the outbox rewrite handles (files.py); S3 drops are not reached.
The acknowledgements (one per sync and identifier) go into the receipt; the sync_state and plan
rows of an acknowledged person are deleted (they hold the identifier).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import pyarrow as pa

from orchestration.engine import Connection, table_exists
from orchestration.privacy.keys import keyed_hash


@dataclass(frozen=True)
class Acknowledgement:
    """What one destination answered for one identifier of one erasure request."""

    request_id: str
    sync: str
    destination: str
    identifier_hash: str
    how: str  # delete (the platform erased the person) or remove (left the audience)
    status: str  # ok, rejected, retryable, unknown, error
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        """Every field but request_id (the receipt that holds the answers names it)."""
        return {k: v for k, v in asdict(self).items() if k != "request_id"}


def holders(
    con: Connection, wanted: list[tuple[set[str], set[str]]]
) -> list[list[tuple[str, str, int | None]]]:
    """Per (customer ids, identifiers) of `wanted`: the sync_state rows (sync_id, identifier,
    generation) not `removed` holding one of them, ordered by sync and identifier. One query
    for every request of a night: two equality joins with the wanted values, instead of a scan
    of sync_state per request."""
    out: list[list[tuple[str, str, int | None]]] = [[] for _ in wanted]
    exists = table_exists(con, "activation", "sync_state")
    rows = [
        (i, kind, v)
        for i, (customer_ids, identifiers) in enumerate(wanted)
        for kind, values in (("c", customer_ids), ("i", identifiers))
        for v in sorted(values)
    ]
    if not exists or not rows:
        return out
    con.register(
        "_c360_erasure_wanted",
        pa.table({name: [r[i] for r in rows] for i, name in enumerate(("r", "kind", "v"))}),
    )
    try:
        found = con.execute(
            """
            select distinct w.r, s.sync_id, s.identifier, s.generation
            from activation.sync_state as s
            inner join _c360_erasure_wanted as w
                on w.kind = 'c' and s.customer_id = w.v
            where s.status <> 'removed'
            union
            select w.r, s.sync_id, s.identifier, s.generation
            from activation.sync_state as s
            inner join _c360_erasure_wanted as w
                on w.kind = 'i' and s.identifier = w.v
            where s.status <> 'removed'
            """
        ).fetchall()
    finally:
        con.unregister("_c360_erasure_wanted")
    # by request, sync and identifier in byte order, whatever the engine's collation: the
    # order the deletes are sent and acknowledged in
    found.sort(key=lambda f: (f[0], str(f[1]).encode(), str(f[2]).encode()))
    for r, sync_id, identifier, generation in found:
        out[r].append((sync_id, identifier, generation))
    return out


def send_deletes(
    con: Connection,
    request_id: str,
    customer_ids: set[str],
    identifiers: set[str],
    log: Callable[[str], None] = lambda message: None,
) -> list[Acknowledgement]:
    """Delete the person at every diff destination holding them; one acknowledgement per sync
    and identifier. A sync that cannot be built (missing env var) is acknowledged `error`."""
    return deliver(con, request_id, holders(con, [(customer_ids, identifiers)])[0], log)


def deliver(
    con: Connection,
    request_id: str,
    held: list[tuple[str, str, int | None]],
    log: Callable[[str], None] = lambda message: None,
) -> list[Acknowledgement]:
    """Send the deletes of `held` ((sync_id, identifier, generation) rows of sync_state); one
    acknowledgement per sync and identifier. Used first by `send_deletes`, then by the nightly
    retry of the acknowledgements that were not ok (retry.py)."""
    from orchestration.activation.destinations import registry
    from orchestration.activation.destinations.rows import make_row
    from orchestration.activation.syncs import load_all_syncs

    if not held:
        return []
    syncs = {s.name: s for s in load_all_syncs()}
    acks: list[Acknowledgement] = []
    by_sync: dict[str, list[tuple[str, int]]] = {}
    for sync_id, identifier, generation in held:
        by_sync.setdefault(sync_id, []).append((identifier, generation or 0))
    for sync_id, rows in by_sync.items():
        sync = syncs.get(sync_id)
        spec = registry.get(sync.destination) if sync else None
        if sync is not None and spec is not None and spec.style == "file":
            # the dropped files are rewritten (files.py); their state rows go with them
            for identifier, _ in rows:
                acks.append(Acknowledgement(request_id, sync_id, spec.kind,
                                            keyed_hash("identifier", identifier),
                                            "file rewrite", "ok"))  # fmt: skip
                for table in ("sync_state", "sync_plan"):
                    con.execute(
                        f"delete from activation.{table} where sync_id = ? and identifier = ?",
                        [sync_id, identifier],
                    )
            continue
        if sync is None or spec is None:
            for identifier, _ in rows:
                acks.append(Acknowledgement(request_id, sync_id, getattr(spec, "kind", "?"),
                                            keyed_hash("identifier", identifier), "remove",
                                            "error", "sync no longer defined"))  # fmt: skip
            continue
        try:
            client = registry.build(sync, log)
            if spec.deletes and hasattr(client, "delete"):
                answers = client.delete([i for i, _ in rows])
                how = "delete"
                outcomes = {i: answers.get(i) for i, _ in rows}
            else:
                made = {i: make_row(sync_id, i, "delete", {}, g + 1) for i, g in rows}
                answers = client.send(list(made.values()))
                how = "remove"
                outcomes = {i: answers.get(r.idempotency_key) for i, r in made.items()}
            if hasattr(client, "close"):
                client.close()
        except Exception as exc:
            outcomes, how = {i: None for i, _ in rows}, "delete" if spec.deletes else "remove"
            reason = type(exc).__name__
        else:
            reason = ""
        for identifier, outcome in outcomes.items():
            status = getattr(outcome, "status", None) or "error"
            acks.append(Acknowledgement(request_id, sync_id, spec.kind,
                                        keyed_hash("identifier", identifier), how, status,
                                        getattr(outcome, "reason", "") or reason))  # fmt: skip
            if status == "ok":
                for table in ("sync_state", "sync_plan"):
                    con.execute(
                        f"delete from activation.{table} where sync_id = ? and identifier = ?",
                        [sync_id, identifier],
                    )
    return acks
