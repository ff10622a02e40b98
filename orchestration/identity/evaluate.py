"""Pairwise precision / recall / F1 of customer_id_map against a truth file.

Truth file (CSV): source, entity, source_record_id, person_id (the generator writes one; users can
bring their own with `c360 identity evaluate --truth FILE`). Only records present in both the map
and the truth are scored. Grain of the metric: pairs of records (same person vs same customer_id).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestration.contracts.rules_sql import quote_literal
from orchestration.engine import Connection, create_temp_table, dialect_of
from orchestration.ingest.landing import glob_escaped


@dataclass(frozen=True)
class IdentityScore:
    records_scored: int
    records_unmatched_in_truth: int
    true_persons: int
    predicted_customers: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    largest_person: int
    largest_customer: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


SCOPES = ("all", "identified")


def _truth_csv(truth_file: Path) -> str:
    """The DuckDB relation of the truth file, read as that one file: DuckDB's read_csv expands
    `[ ] * ?` in a path as a glob (`truth[1].csv` read `truth1.csv`, `truth*.csv` read every
    `truth...csv` beside it), so the path is made absolute (never a `s3://`-like prefix) and its
    glob characters escaped (landing.glob_escaped, as the landing reader's fallback does)."""
    path = Path(truth_file).absolute()
    if not path.is_file():
        raise ValueError(f"{truth_file}: truth file not found")
    return (
        f"read_csv({quote_literal(glob_escaped(path))}, all_varchar=true, hive_partitioning=false)"
    )


def _check_truth_columns(con: Connection, truth_file: Path) -> None:
    """ValueError naming the columns the truth file lacks (read by DuckDB `con`)."""
    required = {"source", "entity", "source_record_id", "person_id"}
    described = con.execute(f"describe select * from {_truth_csv(truth_file)}").fetchall()
    if missing := required - {r[0] for r in described}:
        raise ValueError(f"{truth_file}: truth file lacks column(s) {', '.join(sorted(missing))}")


def evaluate(
    con: Connection,
    truth_file: Path,
    exclude_sources: tuple[str, ...] = (),
    scope: str = "all",
) -> IdentityScore:
    """Score the map against the truth; `exclude_sources` leaves e.g. ("web",) out of the pairs.

    scope "identified" leaves out anonymous ids that carry no link at all (a device never seen
    with a login): no rule, deterministic or probabilistic, has evidence to place them, and they
    stay profiles of their own. "all" scores every record."""
    return evaluate_each(con, truth_file, (exclude_sources, scope))[0]


def evaluate_each(
    con: Connection, truth_file: Path, *variants: tuple[tuple[str, ...], str]
) -> list[IdentityScore]:
    """One score per (exclude_sources, scope) variant, as evaluate() gives each, with the truth
    file read and joined to the map once (the summary and `identity evaluate` show several)."""
    for _excluded, scope in variants:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    truth = f"select source, entity, source_record_id, person_id from {_truth_csv(truth_file)}"
    if dialect_of(con) == "duckdb":
        _check_truth_columns(con, truth_file)
        create_temp_table(con, "_truth", truth)
    else:  # DuckDB reads the file; its rows are copied to the warehouse's session
        from orchestration.warehouse import scratch

        with scratch() as local:
            _check_truth_columns(local, truth_file)
            rows = local.sql(truth).to_arrow_table()
        con.register("_c360_truth", rows)
        try:
            create_temp_table(con, "_truth", "select * from _c360_truth")
        finally:
            con.unregister("_c360_truth")
    # identified: not an anonymous id, or one some rule links (a join, not a correlated EXISTS
    # in the select list, which Spark refuses)
    linked = any(scope == "identified" for _excluded, scope in variants)
    create_temp_table(
        con,
        "_scored_all",
        f"""
        select
            t.source,
            t.person_id,
            m.customer_id,
            {"m.entity <> 'anonymous_ids' or c.record_key is not null" if linked else "true"}
                as identified
        from _truth as t
        inner join marts.customer_id_map as m
            on t.source = m.source and t.entity = m.entity and t.source_record_id = m.source_record_id
        """
        + (
            """
        left join (
            select distinct record_key from intermediate.int_identity__candidate_links
        ) as c
            on c.record_key = m.record_key
        """
            if linked
            else ""
        ),
    )
    return [_score(con, excluded, scope) for excluded, scope in variants]


def _score(con: Connection, exclude_sources: tuple[str, ...], scope: str) -> IdentityScore:
    """The pair counts of one variant over `_truth` and `_scored_all` (evaluate_each)."""
    excluded = ", ".join(quote_literal(x) for x in exclude_sources) or "''"
    create_temp_table(
        con,
        "_scored",
        f"select person_id, customer_id from _scored_all where source not in ({excluded})"
        + (" and identified" if scope == "identified" else ""),
    )
    # each grouping once: records per person, per customer, per (person, customer)
    row = con.execute(
        f"""
        with by_person as (select count(*) as n from _scored group by person_id),
             by_customer as (select count(*) as n from _scored group by customer_id),
             by_both as (select count(*) as n from _scored group by person_id, customer_id),
             person as (select count(*) as groups, sum(n) as records,
                               sum(n * (n - 1) / 2) as pairs, max(n) as largest from by_person),
             customer as (select count(*) as groups, sum(n * (n - 1) / 2) as pairs,
                                 max(n) as largest from by_customer)
        select
            coalesce(person.records, 0),
            (select count(*) from _truth where source not in ({excluded}))
                - coalesce(person.records, 0),
            person.groups,
            customer.groups,
            coalesce(person.pairs, 0),
            coalesce(customer.pairs, 0),
            coalesce((select sum(n * (n - 1) / 2) from by_both), 0),
            coalesce(person.largest, 0),
            coalesce(customer.largest, 0)
        from person cross join customer
        """
    ).fetchone()
    return IdentityScore(*(int(v) for v in row))
