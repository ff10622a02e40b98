"""Why one customer is who it is: its source records, the links that join them, the links that were
refused for its records, and the merges/splits of its id (`c360 identity explain`).

Reads the identity graph of the last resolved as_of from the warehouse (read-only):
marts.customer_id_map, marts.customer_id_history, intermediate.int_identity__records,
int_identity__edges, int_identity__candidate_links, int_identity__dropped_links and
audit.identity_merge_log (the `identity_state/identity_merge_log` asset). Grain of the result: one
CustomerExplanation per customer_id the lookup resolves to (a customer_id gives one; an email can
give several when its links were refused). Personal data (names, emails, phones, email/phone
identifier values) is printed masked unless `show_pii` is set.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestration.contracts.masking import mask_value
from orchestration.engine import Connection, row_locator, table_exists

# identifier types whose values are personal data (crm/shop ids are internal keys)
PII_IDENTIFIER_TYPES = frozenset({"email", "phone", "name_address"})

REQUIRED_TABLES = (
    ("marts", "customer_id_map"),
    ("marts", "customer_id_history"),
    ("intermediate", "int_identity__records"),
    ("intermediate", "int_identity__edges"),
    ("intermediate", "int_identity__candidate_links"),
    ("intermediate", "int_identity__dropped_links"),
    ("intermediate", "int_identity__limit_drops"),
    ("audit", "identity_merge_log"),
)


DROPPED_HEADERS = (
    "record_key", "rule", "identifier_type", "identifier_value", "drop_reason", "would have joined",
)  # fmt: skip
HISTORY_HEADERS = (
    "as_of", "event", "customer_id", "other_customer_id", "records", "rule", "identifier_type",
    "identifier_value", "via_record_key", "run_id",
)  # fmt: skip


class ExplainError(ValueError):
    """The lookup cannot be explained (unknown id or email, no resolved graph, wrong as_of)."""


@dataclass(frozen=True)
class SourceRecord:
    """One source record of the customer (grain: one row of intermediate.int_identity__records)."""

    record_key: str
    source: str
    entity: str
    source_record_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    country_code: str | None
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class Link:
    """One accepted link of a customer's record (grain: one row of int_identity__edges).

    A value link joins a record to an identifier node (`v|email:...`): `records_sharing` counts
    the customer's records on the same node (1 = the value links nobody else). A record link joins
    two records (`node_key` is the other record's key, e.g. loyalty → CRM contact)."""

    record_key: str
    node_key: str
    rule: str
    identifier_type: str
    identifier_value: str | None
    records_sharing: int
    probability: float | None = None
    # a probabilistic link's evidence: per comparison its level and match weight (JSON list of
    # {comparison, level, weight}, the prior first; identity.probabilistic_links)
    comparison_levels: str | None = None

    def evidence(self) -> list[dict[str, Any]]:
        return json.loads(self.comparison_levels) if self.comparison_levels else []

    @property
    def is_record_link(self) -> bool:
        return self.node_key.startswith("r|")


@dataclass(frozen=True)
class DroppedLink:
    """One refused link of a customer's record (grain: one row of int_identity__dropped_links),
    with the customers whose records hold the same value (or are the linked record): who this
    customer would have been merged with had the link been accepted."""

    record_key: str
    node_key: str
    rule: str
    identifier_type: str
    identifier_value: str | None
    drop_reason: str
    other_customer_ids: tuple[str, ...]


@dataclass(frozen=True)
class MergeEvent:
    """One merge or split involving the customer's id or an id retired into it
    (grain: one row of audit.identity_merge_log)."""

    as_of: dt.date
    event: str
    customer_id: str
    other_customer_id: str
    record_count: int
    rule: str | None
    identifier_type: str | None
    identifier_value: str | None
    via_record_key: str | None
    run_id: str | None


@dataclass(frozen=True)
class CustomerExplanation:
    """Everything that makes one customer_id at `as_of`: records, accepted and refused links,
    merge-log history and the retired ids that now resolve to it."""

    customer_id: str
    as_of: dt.date
    records: tuple[SourceRecord, ...]
    links: tuple[Link, ...]
    dropped_links: tuple[DroppedLink, ...]
    history: tuple[MergeEvent, ...]
    retired_ids: tuple[str, ...]
    has_probability: bool = False


@dataclass(frozen=True)
class Explanation:
    """The answer to one lookup: what was asked (`query`, kind 'customer_id' or 'email'), the
    retired id it resolved from if any, and one CustomerExplanation per matching customer."""

    query: str
    kind: str
    as_of: dt.date
    customers: tuple[CustomerExplanation, ...]
    resolved_from_retired_id: str | None = None
    # the probabilistic model in use (audit.identity_models), e.g. "model v3 trained ... on as_of"
    model: str | None = None


def normalize_email(text: str) -> str:
    """The pipeline's email normalisation (dbt macro normalize_email): lower-cased, trimmed."""
    return text.strip().lower()


def _columns(con: Connection, schema: str, table: str) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()
    }


def _graph_as_of(con: Connection, as_of: dt.date | None) -> dt.date:
    missing = [f"{s}.{t}" for s, t in REQUIRED_TABLES if not table_exists(con, s, t)]
    if missing:
        raise ExplainError(
            f"the warehouse has no resolved identity graph (missing {', '.join(missing)}); "
            "run `c360 run` first"
        )
    built = con.execute("select max(as_of) from marts.customer_id_map").fetchone()[0]
    if built is None:
        raise ExplainError("marts.customer_id_map is empty; run `c360 run` first")
    if as_of is not None and as_of != built:
        raise ExplainError(
            f"the warehouse holds the identity graph of as_of {built.isoformat()}, not "
            f"{as_of.isoformat()}; run `c360 run --as-of {as_of.isoformat()}` to explain that day"
        )
    return built


def _customer_ids_for_email(con: Connection, email: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            """
            select distinct m.customer_id
            from intermediate.int_identity__records as r
            inner join marts.customer_id_map as m on r.record_key = m.record_key
            where r.email_normalized = ?
            order by m.customer_id
            """,
            [email],
        ).fetchall()
    ]


def _live_customer_id(con: Connection, customer_id: str) -> tuple[str, str | None]:
    """(live id, retired id it was resolved from or None); ExplainError when unknown."""
    if con.execute(
        "select count(*) from marts.customer_id_map where customer_id = ?", [customer_id]
    ).fetchone()[0]:
        return customer_id, None
    row = con.execute(
        "select current_customer_id from marts.customer_id_history where retired_customer_id = ?",
        [customer_id],
    ).fetchone()
    if (
        row
        and con.execute(
            "select count(*) from marts.customer_id_map where customer_id = ?", [row[0]]
        ).fetchone()[0]
    ):
        return str(row[0]), customer_id
    raise ExplainError(f"unknown customer_id {customer_id!r} (not in marts.customer_id_map)")


def explain_customer(con: Connection, customer_id: str, as_of: dt.date) -> CustomerExplanation:
    """Records, links, refused links and merge-log history of one live customer_id."""
    records = tuple(
        SourceRecord(*row)
        for row in con.execute(
            """
            select r.record_key, r.source, r.entity, r.source_record_id, r.first_name,
                r.last_name, r.email_normalized, r.phone_e164, r.country_code, r.updated_at
            from marts.customer_id_map as m
            inner join intermediate.int_identity__records as r on m.record_key = r.record_key
            where m.customer_id = ?
            order by r.source_priority, r.source, r.entity, r.source_record_id
            """,
            [customer_id],
        ).fetchall()
    )
    # probabilistic links carry match_probability (int_identity__edges); an older or hand-made
    # graph may call it probability
    columns = _columns(con, "intermediate", "int_identity__edges")
    present = [f"e.{c}" for c in ("match_probability", "probability") if c in columns]
    probability = f"coalesce({', '.join(present)}, null)" if present else "cast(null as double)"
    # per-link evidence of probabilistic links, when this run's table carries it
    evidence_join, evidence = "", "cast(null as varchar)"
    if "comparison_levels" in _columns(con, "identity", "probabilistic_links"):
        evidence = "p.comparison_levels"
        evidence_join = (
            "left join identity.probabilistic_links as p on e.rule = 'probabilistic' "
            "and p.record_key = e.record_key and p.node_key = e.node_key"
        )
    links = tuple(
        Link(*row)
        for row in con.execute(
            f"""
            with mine as (
                select record_key from marts.customer_id_map where customer_id = ?
            ),
            edges as (
                -- the final graph: a link a max_per_customer limit refused is not in it
                select * from intermediate.int_identity__edges as e
                where (record_key in (select record_key from mine)
                    or node_key in (select record_key from mine))
                    and not exists (
                        select 1 from intermediate.int_identity__limit_drops as l
                        where l.record_key = e.record_key and l.node_key = e.node_key
                    )
            ),
            sharing as (
                -- a grouped count, not count(distinct) over a window: Postgres has no such window
                select node_key, count(distinct record_key) as records_sharing
                from edges group by node_key
            )
            select e.record_key, e.node_key, e.rule, e.identifier_type, e.identifier_value,
                sharing.records_sharing,
                {probability} as probability,
                {evidence} as comparison_levels
            from edges as e
            inner join sharing on sharing.node_key = e.node_key
            {evidence_join}
            order by e.identifier_type, e.identifier_value, e.record_key, e.node_key
            """,
            [customer_id],
        ).fetchall()
    )
    dropped_rows = con.execute(
        """
        with mine as (
            select record_key from marts.customer_id_map where customer_id = ?
        ),
        dropped as (
            select d.record_key, d.node_key, d.rule, d.identifier_type,
                c.identifier_value, d.drop_reason
            from intermediate.int_identity__dropped_links as d
            inner join intermediate.int_identity__candidate_links as c
                on d.record_key = c.record_key and d.node_key = c.node_key
            where d.record_key in (select record_key from mine)
                or d.node_key in (select record_key from mine)
            union all
            select l.record_key, l.node_key, l.rule, l.identifier_type, l.identifier_value,
                l.drop_reason || ':' || l.exceeded_type
            from intermediate.int_identity__limit_drops as l
            where l.record_key in (select record_key from mine)
                or l.node_key in (select record_key from mine)
        ),
        far_side as (
            -- the records the refused link would have joined: the value's other records,
            -- the linked record itself, the linking record
            select d.record_key, d.node_key, c.record_key as other_record_key
            from dropped as d
            inner join intermediate.int_identity__candidate_links as c
                on d.node_key = c.node_key
            union
            -- each column named: a column twice under one name breaks Spark's optimizer
            -- (RemoveRedundantAliases leaves the plan unresolved)
            select record_key, node_key, node_key as other_record_key
            from dropped where node_key like 'r|%'
            union
            select record_key, node_key, record_key as other_record_key from dropped
        )
        select d.record_key, d.node_key, d.rule, d.identifier_type, d.identifier_value,
            d.drop_reason, m.customer_id
        from dropped as d
        left join far_side as f on d.record_key = f.record_key and d.node_key = f.node_key
        left join marts.customer_id_map as m
            on f.other_record_key = m.record_key and m.customer_id <> ?
        order by d.drop_reason, d.identifier_type, d.identifier_value, d.record_key
        """,
        [customer_id, customer_id],
    ).fetchall()
    others: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for *key, other in dropped_rows:
        others[tuple(key)].update([other] if other else [])
    dropped = tuple(DroppedLink(*key, tuple(sorted(ids))) for key, ids in others.items())
    retired = tuple(
        r[0]
        for r in con.execute(
            "select retired_customer_id from marts.customer_id_history "
            "where current_customer_id = ? order by retired_as_of, retired_customer_id",
            [customer_id],
        ).fetchall()
    )
    ids = [customer_id, *retired]
    position = row_locator(con)  # an append-only log: a row's place is the order of the runs
    history = tuple(
        MergeEvent(*row)
        for row in con.execute(
            f"""
            select as_of, event, customer_id, other_customer_id, record_count, rule,
                identifier_type, identifier_value, via_record_key, run_id
            from audit.identity_merge_log
            where (customer_id in (select unnest(?)) or other_customer_id in (select unnest(?)))
                and as_of <= ?
            order by as_of, {position}
            """,
            [ids, ids, as_of],
        ).fetchall()
    )
    return CustomerExplanation(
        customer_id=customer_id,
        as_of=as_of,
        records=records,
        links=links,
        dropped_links=dropped,
        history=history,
        retired_ids=retired,
        # the column only when a link of this customer is probabilistic
        has_probability=any(link.probability is not None for link in links),
    )


def explain(con: Connection, query: str, as_of: dt.date | None = None) -> Explanation:
    """Explain the customer(s) of `query`: an email (contains '@', normalised like the pipeline:
    every customer with a record carrying it) or a customer_id (a retired id resolves to the live
    one). `as_of` must be the as_of of the graph in the warehouse (default: that one).
    Raises ExplainError for an unknown id or email or a warehouse without a resolved graph."""
    graph_as_of = _graph_as_of(con, as_of)
    text = query.strip()
    if not text:
        raise ExplainError("give a customer_id or an email")
    if "@" in text:
        email = normalize_email(text)
        ids = _customer_ids_for_email(con, email)
        if not ids:
            raise ExplainError(
                f"no source record carries the email {mask_value(email)} "
                "(normalised: lower-cased, trimmed)"
            )
        customers = tuple(explain_customer(con, cid, graph_as_of) for cid in ids)
        return Explanation(email, "email", graph_as_of, customers, model=_model(con))
    live, retired = _live_customer_id(con, text)
    return Explanation(
        text,
        "customer_id",
        graph_as_of,
        (explain_customer(con, live, graph_as_of),),
        retired,
        model=_model(con),
    )


def _model(con: Connection) -> str:
    """The probabilistic model in use: the latest accepted trained version, else the fixed one."""
    from orchestration.identity import training

    current = training.active(con)
    return current.describe() if current else "the shipped fixed model (no trained model yet)"


def _pii(value: Any, show_pii: bool) -> str:
    if value is None or value == "":
        return "-"
    return str(value) if show_pii else mask_value(value)


def _identifier(identifier_type: str | None, value: Any, show_pii: bool) -> str:
    if identifier_type in PII_IDENTIFIER_TYPES:
        return _pii(value, show_pii)
    return "-" if value is None or value == "" else str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return ("    " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _format_customer(c: CustomerExplanation, show_pii: bool) -> list[str]:
    out = [
        f"customer {c.customer_id} (as_of {c.as_of.isoformat()}): {len(c.records)} source "
        f"record(s), {len(c.links)} accepted link(s), {len(c.dropped_links)} refused link(s)"
    ]
    if c.retired_ids:
        out.append(f"  retired ids now resolving to it: {', '.join(c.retired_ids)}")
    out += ["", "  records"]
    out += _table(
        ["record_key", "first_name", "last_name", "email", "phone", "country", "updated_at"],
        [
            [
                r.record_key,
                _pii(r.first_name, show_pii),
                _pii(r.last_name, show_pii),
                _pii(r.email, show_pii),
                _pii(r.phone, show_pii),
                r.country_code or "-",
                r.updated_at.isoformat(sep=" ", timespec="seconds") if r.updated_at else "-",
            ]
            for r in c.records
        ],
    )
    out += ["", "  links (accepted: the graph the customer is the connected component of)"]
    if c.links:
        headers = ["record_key", "rule", "identifier_type", "identifier_value", "joins"]
        if c.has_probability:
            headers.append("probability")
        rows = []
        for link in c.links:
            joins = (
                link.node_key
                if link.is_record_link
                else (
                    f"{link.records_sharing} records on this value"
                    if link.records_sharing > 1
                    else "no other record"
                )
            )
            row = [
                link.record_key,
                link.rule,
                link.identifier_type,
                _identifier(link.identifier_type, link.identifier_value, show_pii),
                joins,
            ]
            if c.has_probability:
                # six decimals: the links that matter sit between 0.999 and 1
                row.append("-" if link.probability is None else f"{link.probability:.6f}")
            rows.append(row)
        out += _table(headers, rows)
        for link in c.links:
            if link.evidence():
                out += ["", f"  probabilistic link {link.record_key} — {link.node_key}: "
                        "comparison levels and match weights (log2 Bayes factors; sum = match "
                        "weight)"]  # fmt: skip
                out += _table(
                    ["comparison", "level", "weight"],
                    [[e["comparison"], str(e["level"]), f"{e['weight']:+.2f}"]
                     for e in link.evidence()],
                )  # fmt: skip
    else:
        out.append("    none: a single record with no identifier")
    out += ["", "  refused links (not in the graph)"]
    if c.dropped_links:
        out += _table(
            DROPPED_HEADERS,
            [
                [
                    d.record_key,
                    d.rule,
                    d.identifier_type,
                    _identifier(d.identifier_type, d.identifier_value, show_pii),
                    d.drop_reason,
                    ", ".join(d.other_customer_ids) or "no other customer",
                ]
                for d in c.dropped_links
            ],
        )
    else:
        out.append("    none")
    out += ["", "  merge log (merges and splits of this id and of ids retired into it)"]
    if c.history:
        out += [
            "    merge: other_customer_id was retired into customer_id (rule: the bridging link);",
            "    split: customer_id split off other_customer_id (rule: the refused link)",
        ]
        out += _table(
            HISTORY_HEADERS,
            [
                [
                    e.as_of.isoformat(),
                    e.event,
                    e.customer_id,
                    e.other_customer_id,
                    str(e.record_count),
                    e.rule or "-",
                    e.identifier_type or "-",
                    _identifier(e.identifier_type, e.identifier_value, show_pii),
                    e.via_record_key or "-",
                    e.run_id or "-",
                ]
                for e in c.history
            ],
        )
    else:
        out.append("    none")
    return out


def format_explanation(explanation: Explanation, show_pii: bool = False) -> str:
    """The explanation as text; names, emails, phones and email/phone identifier values are
    masked ('s***@***.org', '***42', 'S***') unless show_pii."""
    if explanation.kind == "email":
        shown = _pii(explanation.query, show_pii)
        head = [
            f"email {shown}: records of {len(explanation.customers)} customer(s) carry it "
            f"(identity graph as_of {explanation.as_of.isoformat()})"
        ]
    else:
        head = [f"customer_id {explanation.query}"]
        if explanation.resolved_from_retired_id:
            live = explanation.customers[0].customer_id
            head = [
                f"customer_id {explanation.query} was retired by a merge; "
                f"it resolves to the live customer_id {live}"
            ]
    lines = head
    if explanation.model:
        lines.append(f"probabilistic links scored by {explanation.model}")
    for customer in explanation.customers:
        lines += ["", *_format_customer(customer, show_pii)]
    if not show_pii:
        lines += ["", "personal data masked; --show-pii prints it"]
    return "\n".join(lines) + "\n"
