"""Refused links: how many candidate links identity resolution refused, and by which limit.

A link is refused by a guard or limit of `vars.identity` (docs/identity.md): the blocklist,
`max_records_per_value`, the birth-date and first-name guards (int_identity__dropped_links, one
row per refused record-to-value link) or a `max_per_customer` limit (int_identity__limit_drops,
one row per accepted link the limit undid). Each refusal is named by its limit and the identifier
type it acted on, e.g. `max_per_customer:crm_contact_id` (the type whose limit was passed) or
`too_many_records_per_value:phone`. Candidate links are every link considered: the candidate
record-to-value links and every link of the graph before limits (household record-to-record
links, probabilistic pairs), counted once.

A source holding duplicates without saying so (`sources_with_duplicates`) shows as most of its
links refused by `max_per_customer:<its id type>`: the run summary prints the counts and the
asset check identity_state/graph_health:refused_links_share warns past `max_refused_link_share`.
Counts only, no identifier values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestration.engine import Connection, table_exists

_TABLES = ("int_identity__candidate_links", "int_identity__edges")


@dataclass(frozen=True)
class Refusals:
    candidate_links: int
    by_limit: dict[str, int] = field(default_factory=dict)  # limit -> links, most first

    @property
    def refused(self) -> int:
        return sum(self.by_limit.values())

    @property
    def share(self) -> float:
        return self.refused / self.candidate_links if self.candidate_links else 0.0

    def describe(self, top: int | None = None) -> str:
        """`max_per_customer:crm_contact_id 4,812, first_name_conflict:email 3` (most first)."""
        items = list(self.by_limit.items())[:top]
        more = len(self.by_limit) - len(items)
        text = ", ".join(f"{limit} {n:,}" for limit, n in items)
        return text + (f", {more} more" if more > 0 else "")

    def exceeds(self, max_share: float) -> bool:
        return self.refused > 0 and self.share > max_share

    def message(self, max_share: float) -> str:
        head = (
            f"{self.refused:,} of {self.candidate_links:,} candidate links refused "
            f"({self.share:.2%}; max_refused_link_share {max_share:.2%})"
        )
        if not self.refused:
            return head
        hint = ""
        if any(k.startswith("max_per_customer:") for k in self.by_limit) and self.exceeds(
            max_share
        ):
            hint = (
                "; if a source holds several records of one person, declare it in "
                "vars.identity.sources_with_duplicates"
            )
        return f"{head} by {self.describe()}{hint}"


def measure(con: Connection) -> Refusals | None:
    """The refusals of the graph in the warehouse (None before identity was ever built)."""
    if not all(table_exists(con, "intermediate", t) for t in _TABLES):
        return None
    candidates = con.execute(
        "select count(*) from (select record_key, node_key from "
        "intermediate.int_identity__candidate_links union select record_key, node_key from "
        "intermediate.int_identity__edges) as links"
    ).fetchone()[0]
    parts = []
    if table_exists(con, "intermediate", "int_identity__dropped_links"):
        parts.append(
            "select drop_reason || ':' || identifier_type as limit_name "
            "from intermediate.int_identity__dropped_links"
        )
    if table_exists(con, "intermediate", "int_identity__limit_drops"):
        parts.append(
            "select 'max_per_customer:' || exceeded_type as limit_name "
            "from intermediate.int_identity__limit_drops"
        )
    by_limit: dict[str, int] = {}
    if parts:
        for limit, n in con.execute(
            f"select limit_name, count(*) from ({' union all '.join(parts)}) as refused "
            "group by limit_name order by count(*) desc, limit_name"
        ).fetchall():
            by_limit[limit] = int(n)
    return Refusals(int(candidates), by_limit)
