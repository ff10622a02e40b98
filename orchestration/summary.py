"""The run summary `c360 run` and `make demo` print: rows per stage, identity quality, segments,
audiences synced. Counts only — no personal data is printed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from orchestration.identity import config as identity_config
from orchestration.identity import refusals
from orchestration.identity.evaluate import evaluate
from orchestration.warehouse import table_exists


def _q(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def _refusals_line(refused: refusals.Refusals) -> str:
    """`identity: N links refused of M candidate links (x %) (limit a: n, ...)`: every refused
    link, by the limit that refused it (docs/identity.md, "Refused links")."""
    line = (
        f"identity: {refused.refused:,} links refused of {refused.candidate_links:,} candidate "
        f"links ({refused.share:.2%})"
    )
    if refused.by_limit:
        line += " (" + ", ".join(f"{k}: {n:,}" for k, n in refused.by_limit.items()) + ")"
    return line


def render_summary(con: duckdb.DuckDBPyConnection, as_of: dt.date, truth_file: Path | None) -> str:
    lines = [f"c360 nightly summary — as_of {as_of.isoformat()}", ""]
    lines.append("Ingestion (this as_of)        extracted     loaded  quarantined  deduplicated")
    for cid, ext, loaded, quar, dedup in _q(
        con,
        "select contract_id, sum(extracted), sum(loaded), sum(quarantined), sum(deduplicated) "
        "from audit.ingestion_audit where as_of = ? group by 1 order by 1",
        [as_of],
    ):
        lines.append(f"  {cid:<26}{ext:>11,}{loaded:>11,}{quar:>13,}{dedup:>14,}")
    lines.append("")
    lines.append("Warehouse")
    for schema, table in (
        ("marts", "customer_id_map"),
        ("marts", "customer_360"),
        ("marts", "consent_state"),
        ("marts", "segment_membership"),
        ("activation", "contact_history"),
    ):
        n = (
            _q(con, f"select count(*) from {schema}.{table}")[0][0]
            if table_exists(con, schema, table)
            else 0
        )
        lines.append(f"  {schema + '.' + table:<34}{n:>11,} rows")
    refused = refusals.measure(con)
    if refused is not None:
        lines += ["", _refusals_line(refused)]
        max_share = identity_config.load().max_refused_link_share
        if refused.exceeds(max_share):
            lines.append(f"  WARNING: {refused.message(max_share)}")
    if truth_file and truth_file.exists() and table_exists(con, "marts", "customer_id_map"):
        s = evaluate(con, truth_file)
        known = evaluate(con, truth_file, exclude_sources=("web",))
        lines += [
            "",
            "Identity resolution vs ground truth",
            f"  records scored {s.records_scored:,}; true persons {s.true_persons:,}; "
            f"customers resolved {s.predicted_customers:,}",
            f"  all records:              pairwise precision {s.precision:.4f}  recall {s.recall:.4f}  F1 {s.f1:.4f}",
            f"  without web anonymous ids: pairwise precision {known.precision:.4f}  recall "
            f"{known.recall:.4f}  F1 {known.f1:.4f}",
        ]
    if table_exists(con, "marts", "segment_membership"):
        lines += ["", "Segments                      members   holdout"]
        for seg, n, h in _q(
            con,
            "select segment_name, count(*), sum(case when is_holdout then 1 else 0 end) "
            "from marts.segment_membership group by 1 order by 1",
        ):
            lines.append(f"  {seg:<26}{n:>10,}{h:>10,}")
    if table_exists(con, "activation", "contact_history"):
        lines += ["", "Activation (this as_of)          ok  held_out  filtered  failed"]
        for sync, ok, held, filt, failed in _q(
            con,
            "select sync_id, count(*) filter (where outcome = 'ok'), "
            "count(*) filter (where outcome = 'held_out'), count(*) filter (where outcome = 'filtered'), "
            "count(*) filter (where outcome in ('rejected', 'retryable', 'unknown')) "
            "from activation.contact_history where as_of = ? group by 1 order by 1",
            [as_of],
        ):
            lines.append(f"  {sync:<30}{ok:>6,}{held:>10,}{filt:>10,}{failed:>8,}")
    return "\n".join(lines)
