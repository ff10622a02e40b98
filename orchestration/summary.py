"""The run summary `c360 run`, `c360 summary` and `make demo` print: rows per stage, identity
quality, segments, audiences synced — of ONE as_of, never another day's figures. Counts only — no
personal data is printed.

What is kept per as_of (audit.ingestion_audit, audit.segment_stats, activation.contact_history) is
read for the asked as_of. The marts and the identity graph hold only the latest run's as_of: they
are printed when that is the asked as_of, otherwise the summary says which as_of they hold.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from orchestration.engine import Connection, table_exists
from orchestration.identity import config as identity_config
from orchestration.identity import refusals
from orchestration.identity.evaluate import evaluate_each

NO_NEW_FILES = "no new landing files for any source since the last run"


class NoRunForDate(LookupError):
    """The warehouse records no nightly run for the asked as_of (the message says what to do)."""

    def __init__(self, as_of: dt.date, runs: list[dt.date]) -> None:
        held = (
            f"the warehouse holds runs for {_dates(runs)}"
            if runs
            else "the warehouse holds no run yet"
        )
        super().__init__(
            f"no run for {as_of.isoformat()}: {held}; "
            f"run `c360 run --as-of {as_of.isoformat()}` first"
        )
        self.as_of = as_of
        self.runs = runs


def _dates(runs: list[dt.date]) -> str:
    shown = [d.isoformat() for d in runs[-5:]]
    return (f"{len(runs) - 5} earlier dates, " if len(runs) > 5 else "") + ", ".join(shown)


def _q(con: Connection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def runs_held(con: Connection) -> list[dt.date]:
    """The as_of dates a nightly run recorded (every run stages every source entity, with or
    without new files, in audit.ingestion_batches), oldest first."""
    if not table_exists(con, "audit", "ingestion_batches"):
        return []
    return [r[0] for r in _q(con, "select distinct as_of from audit.ingestion_batches order by 1")]


@dataclass(frozen=True)
class NewFiles:
    """What the latest run of an as_of found in the landing folder, per source entity."""

    run_id: str
    without_new_files: list[str]  # contract ids whose staging found no new file
    with_new_files: list[str]

    @property
    def none_found(self) -> bool:
        return not self.with_new_files


def new_files(con: Connection, as_of: dt.date) -> NewFiles | None:
    """Source entities with and without new landing files in the latest run of `as_of` (the run
    that staged last); None when no run staged anything for it. A live re-read holding nothing
    new (status nothing_new) counts as no new file."""
    if not table_exists(con, "audit", "ingestion_batches"):
        return None
    row = con.execute(
        "select run_id from audit.ingestion_batches where as_of = ? "
        "order by staged_at desc limit 1",
        [as_of],
    ).fetchone()
    if not row:
        return None
    found = _q(
        con,
        "select contract_id, bool_or(batch_id is not null and status <> 'nothing_new') "
        "from audit.ingestion_batches where as_of = ? and run_id = ? group by 1 order by 1",
        [as_of, row[0]],
    )
    return NewFiles(
        run_id=row[0],
        without_new_files=[c for c, new in found if not new],
        with_new_files=[c for c, new in found if new],
    )


def _held_as_of(con: Connection) -> dt.date | None:
    """The as_of the marts hold: that of the latest run that built them (None: never built)."""
    if not table_exists(con, "marts", "customer_360"):
        return None
    held = _q(con, "select max(as_of) from marts.customer_360")[0][0]
    if held is None and table_exists(con, "audit", "ingestion_batches"):
        # built, but empty (no records yet): the as_of of the run that staged last
        latest = _q(
            con, "select as_of from audit.ingestion_batches order by staged_at desc limit 1"
        )
        held = latest[0][0] if latest else None
    return held


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


def _ingestion(con: Connection, as_of: dt.date) -> list[str]:
    lines = ["Ingestion (this as_of)        extracted     loaded  quarantined  deduplicated"]
    rows = (
        _q(
            con,
            "select contract_id, sum(extracted), sum(loaded), sum(quarantined), "
            "sum(deduplicated) from audit.ingestion_audit where as_of = ? group by 1 order by 1",
            [as_of],
        )
        if table_exists(con, "audit", "ingestion_audit")
        else []
    )
    for cid, ext, loaded, quar, dedup in rows:
        lines.append(f"  {cid:<26}{ext:>11,}{loaded:>11,}{quar:>13,}{dedup:>14,}")
    found = new_files(con, as_of)
    if found is not None and found.none_found:
        earlier = " (the rows above were published by an earlier run of this as_of)" if rows else ""
        lines.append(f"  WARNING: {NO_NEW_FILES}{earlier}")
    elif found is not None and found.without_new_files:
        lines.append(
            f"  no new landing files in the last run for: {', '.join(found.without_new_files)}"
        )
    return lines


def _marts(
    con: Connection, as_of: dt.date, truth_file: Path | None, refused: refusals.Refusals | None
) -> list[str]:
    """Warehouse counts, refused links and identity quality at `as_of` (the marts' as_of)."""
    lines = ["", "Warehouse (this as_of)"]
    for schema, table in (
        ("marts", "customer_id_map"),
        ("marts", "customer_360"),
        ("marts", "consent_state"),
        ("marts", "segment_membership"),
        ("activation", "contact_history"),
    ):
        n = (
            _q(con, f"select count(*) from {schema}.{table} where as_of = ?", [as_of])[0][0]
            if table_exists(con, schema, table)
            else 0
        )
        lines.append(f"  {schema + '.' + table:<34}{n:>11,} rows")
    if refused is None:
        refused = refusals.measure(con)
    if refused is not None:
        lines += ["", _refusals_line(refused)]
        max_share = identity_config.load().max_refused_link_share
        if refused.exceeds(max_share):
            lines.append(f"  WARNING: {refused.message(max_share)}")
    if truth_file and truth_file.exists() and table_exists(con, "marts", "customer_id_map"):
        s, known = evaluate_each(con, truth_file, ((), "all"), (("web",), "all"))
        lines += [
            "",
            "Identity resolution vs ground truth",
            f"  records scored {s.records_scored:,}; true persons {s.true_persons:,}; "
            f"customers resolved {s.predicted_customers:,}",
            f"  all records:              pairwise precision {s.precision:.4f}  recall {s.recall:.4f}  F1 {s.f1:.4f}",
            f"  without web anonymous ids: pairwise precision {known.precision:.4f}  recall "
            f"{known.recall:.4f}  F1 {known.f1:.4f}",
        ]
    return lines


def _segments(con: Connection, as_of: dt.date) -> list[str]:
    """Members and holdout per segment at `as_of` (audit.segment_stats keeps every as_of)."""
    if table_exists(con, "audit", "segment_stats"):
        rows = _q(
            con,
            "select segment_name, members, holdout from audit.segment_stats where as_of = ? "
            "order by 1",
            [as_of],
        )
    elif table_exists(con, "marts", "segment_membership"):
        rows = _q(
            con,
            "select segment_name, count(*), sum(case when is_holdout then 1 else 0 end) "
            "from marts.segment_membership where as_of = ? group by 1 order by 1",
            [as_of],
        )
    else:
        return []
    lines = ["", "Segments                      members   holdout"]
    lines += [f"  {seg:<26}{n:>10,}{h:>10,}" for seg, n, h in rows]
    return lines


def _activation(con: Connection, as_of: dt.date) -> list[str]:
    if not table_exists(con, "activation", "contact_history"):
        return []
    lines = ["", "Activation (this as_of)          ok  held_out  filtered  failed"]
    for sync, ok, held, filt, failed in _q(
        con,
        "select sync_id, count(*) filter (where outcome = 'ok'), "
        "count(*) filter (where outcome = 'held_out'), count(*) filter (where outcome = 'filtered'), "
        "count(*) filter (where outcome in ('rejected', 'retryable', 'unknown')) "
        "from activation.contact_history where as_of = ? group by 1 order by 1",
        [as_of],
    ):
        lines.append(f"  {sync:<30}{ok:>6,}{held:>10,}{filt:>10,}{failed:>8,}")
    return lines


def render_summary(
    con: Connection,
    as_of: dt.date,
    truth_file: Path | None,
    refused: refusals.Refusals | None = None,
) -> str:
    """The summary of `as_of`; NoRunForDate when no nightly run recorded that as_of. `refused`:
    the refusals the run just measured (pipeline.NightlyReport.refusals); counted from the
    warehouse when None."""
    runs = runs_held(con)
    if as_of not in runs:
        raise NoRunForDate(as_of, runs)
    lines = [f"c360 nightly summary — as_of {as_of.isoformat()}", ""]
    lines += _ingestion(con, as_of)
    held = _held_as_of(con)
    if held == as_of:
        lines += _marts(con, as_of, truth_file, refused)
    else:
        lines += [
            "",
            "Warehouse: "
            + (
                f"the marts and identity graph hold as_of {held.isoformat()} (the latest run); "
                f"those of {as_of.isoformat()} are not kept"
                if held
                else f"no marts were built (the run of {as_of.isoformat()} did not reach them)"
            ),
        ]
    lines += _segments(con, as_of)
    lines += _activation(con, as_of)
    return "\n".join(lines)
