"""Identity graph health, measured after every resolution: the over-merge circuit breaker.

Grain of audit.identity_graph_health: one row per run (as_of, run_id). The merge rate compares
the merges this run logged (audit.identity_merge_log rows of its as_of that no earlier measured
run counted) with the customers of the last measured run of any as_of — a rerun at the same as_of
included, so a rerun with a loosened limit that merges many customers trips the breaker. Bounds
come from vars.identity.circuit_breaker; identifier values leave the warehouse only masked.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestration.contracts.masking import mask_value
from orchestration.engine import Connection, table_exists
from orchestration.identity.refusals import Refusals
from orchestration.warehouse import create_table

TABLE = "audit.identity_graph_health"


@dataclass(frozen=True)
class Bounds:
    max_cluster_records: int = 50
    max_merge_rate: float = 0.02  # merges / customers of the last measured run (any as_of)

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> Bounds:
        raw = raw or {}
        return cls(
            int(raw.get("max_cluster_records", cls.max_cluster_records)),
            float(raw.get("max_merge_rate", cls.max_merge_rate)),
        )


@dataclass(frozen=True)
class GraphHealth:
    as_of: dt.date
    customers: int
    records: int
    largest_cluster_records: int
    largest_customer_id: str
    identifiers_per_customer_avg: float
    identifiers_per_customer_max: int
    merges: int
    splits: int
    previous_customers: int | None
    # the identifier values holding the largest cluster together, masked: (type, value, records)
    largest_cluster_values: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def merge_rate(self) -> float:
        return self.merges / self.previous_customers if self.previous_customers else 0.0

    def violations(self, bounds: Bounds) -> list[str]:
        out = []
        if self.largest_cluster_records > bounds.max_cluster_records:
            values = ", ".join(f"{t} {v} ({n} records)" for t, v, n in self.largest_cluster_values)
            out.append(
                f"largest customer {self.largest_customer_id} has {self.largest_cluster_records} "
                f"records (bound {bounds.max_cluster_records}); held together by: {values or '-'}"
            )
        if self.merge_rate > bounds.max_merge_rate:
            out.append(
                f"merge rate {self.merge_rate:.4f} ({self.merges} merges / "
                f"{self.previous_customers} customers of the previous run) is above "
                f"{bounds.max_merge_rate}"
            )
        return out

    def metadata(self) -> dict[str, Any]:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        d["merge_rate"] = round(self.merge_rate, 6)
        d["largest_cluster_values"] = [list(v) for v in self.largest_cluster_values]
        return d


# the figures a run with the same graph (identity/graph_key.py) measured alike
_GRAPH_FIGURES = (
    "customers", "records", "largest_cluster_records", "largest_customer_id",
    "identifiers_per_customer_avg", "identifiers_per_customer_max",
)  # fmt: skip


def known_figures(con: Connection, key: str | None) -> tuple[dict, Refusals] | None:
    """The graph figures and refusals of the last measured run whose graph had content key
    `key` (identity/graph_key.py), or None (no key, or no such run)."""
    if key is None or not table_exists(con, "audit", TABLE.split(".")[1]):
        return None
    ensure_table(con)
    row = con.execute(
        f"select {', '.join(_GRAPH_FIGURES)}, candidate_links, refused_by_limit from {TABLE} "
        "where graph_key = ? and refused_by_limit is not null order by measured_at desc limit 1",
        [key],
    ).fetchone()
    if row is None:
        return None
    figures = dict(zip(_GRAPH_FIGURES, row[: len(_GRAPH_FIGURES)], strict=True))
    return figures, Refusals(int(row[-2]), dict(json.loads(row[-1])))


def measure(
    con: Connection, as_of: dt.date, run_id: str = "", known: dict | None = None
) -> GraphHealth:
    """Health of the graph dbt just resolved (marts.customer_id_map, intermediate edges), for the
    run `run_id` (the Dagster run that built it; its own earlier row, if any, is not compared).
    `known`: the graph figures of a run that measured the same graph (known_figures); the
    merges, splits and the previous run are this run's either way."""
    if known is None:
        known = _graph_figures(con)
    customers, records = known["customers"], known["records"]
    largest_id, largest_n = known["largest_customer_id"], known["largest_cluster_records"]
    avg_ids, max_ids = known["identifiers_per_customer_avg"], known["identifiers_per_customer_max"]
    values = con.execute(
        """
        select e.identifier_type, e.identifier_value, count(distinct e.record_key) as n
        from intermediate.int_identity__edges as e
        inner join marts.customer_id_map as m on e.record_key = m.record_key
        where m.customer_id = ? and not exists (
            select 1 from intermediate.int_identity__limit_drops as l
            where l.record_key = e.record_key and l.node_key = e.node_key
        )
        group by e.identifier_type, e.identifier_value
        order by n desc, e.identifier_type, e.identifier_value
        limit 5
        """,
        [largest_id],
    ).fetchall()
    return _with_run_figures(con, as_of, run_id, customers, records, largest_id, largest_n,
                             avg_ids, max_ids, values)  # fmt: skip


def _graph_figures(con: Connection) -> dict:
    """Customers, records, the largest customer and identifiers per customer, counted."""
    customers, records = con.execute(
        "select count(distinct customer_id), count(*) from marts.customer_id_map"
    ).fetchone()
    largest_id, largest_n = con.execute(
        "select customer_id, count(*) as n from marts.customer_id_map "
        "group by customer_id order by n desc, customer_id limit 1"
    ).fetchone() or ("", 0)
    avg_ids, max_ids = con.execute(
        """
        with per_customer as (
            select m.customer_id, count(distinct e.node_key) as identifiers
            from marts.customer_id_map as m
            left join intermediate.int_identity__edges as e
                on e.record_key = m.record_key and e.node_key like 'v|%'
                and not exists (  -- a link a max_per_customer limit refused is not in the graph
                    select 1 from intermediate.int_identity__limit_drops as l
                    where l.record_key = e.record_key and l.node_key = e.node_key
                )
            group by m.customer_id
        )
        select coalesce(avg(identifiers), 0), coalesce(max(identifiers), 0) from per_customer
        """
    ).fetchone()
    return {
        "customers": customers, "records": records, "largest_cluster_records": largest_n,
        "largest_customer_id": largest_id, "identifiers_per_customer_avg": avg_ids,
        "identifiers_per_customer_max": max_ids,
    }  # fmt: skip


def _with_run_figures(
    con, as_of, run_id, customers, records, largest_id, largest_n, avg_ids, max_ids, values
) -> GraphHealth:
    ensure_table(con)
    # merges of this as_of that no other measured run has counted yet: this run's (dbt logs them
    # with the Dagster run id), or an earlier run's whose health was never measured
    merges, splits = con.execute(
        f"""
        select count(*) filter (where log.event = 'merge'), count(*) filter (where log.event = 'split')
        from audit.identity_merge_log as log
        where log.as_of = ? and not exists (
            select 1 from {TABLE} as measured
            where measured.run_id = log.run_id and measured.run_id <> ?
        )
        """,
        [as_of, run_id],
    ).fetchone()
    # the last run measured, whatever its as_of: the same day's earlier run included
    row = con.execute(
        f"select customers from {TABLE} where run_id <> ? order by measured_at desc limit 1",
        [run_id],
    ).fetchone()
    previous = int(row[0]) if row else None
    return GraphHealth(
        as_of=as_of,
        customers=int(customers),
        records=int(records),
        largest_cluster_records=int(largest_n),
        largest_customer_id=str(largest_id),
        identifiers_per_customer_avg=round(float(avg_ids), 3),
        identifiers_per_customer_max=int(max_ids),
        merges=int(merges),
        splits=int(splits),
        previous_customers=previous,
        largest_cluster_values=[(t, mask_value(v), int(n)) for t, v, n in values],
    )


COLUMNS = """
    as_of date not null, run_id varchar not null, measured_at timestamp not null,
    customers bigint, records bigint, largest_cluster_records bigint,
    largest_customer_id varchar, identifiers_per_customer_avg double,
    identifiers_per_customer_max bigint, merges bigint, splits bigint, merge_rate double
"""


def ensure_table(con: Connection) -> None:
    create_table(con, TABLE, COLUMNS)
    # the graph's content key and the refusals measured on it (known_figures)
    for column, kind in (("graph_key", "varchar"), ("candidate_links", "bigint"),
                         ("refused_by_limit", "varchar")):  # fmt: skip
        con.execute(f"alter table {TABLE} add column if not exists {column} {kind}")


def record(
    con: Connection,
    health: GraphHealth,
    run_id: str,
    graph_key: str | None = None,
    refused: Refusals | None = None,
) -> None:
    """Append this run's figures (no identifier values: the table is a run log), with the
    graph's content key and its refusals when given."""
    ensure_table(con)
    con.execute(
        # by position: COLUMNS, then ensure_table's added columns in their order
        f"insert into {TABLE} values (?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            health.as_of, run_id, health.customers, health.records,
            health.largest_cluster_records, health.largest_customer_id,
            health.identifiers_per_customer_avg, health.identifiers_per_customer_max,
            health.merges, health.splits, health.merge_rate, graph_key,
            None if refused is None else refused.candidate_links,
            None if refused is None else json.dumps(refused.by_limit),
        ],
    )  # fmt: skip
