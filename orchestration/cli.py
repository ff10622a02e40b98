"""`c360` command line: generate | run | summary | report | segments | sync | sources | identity | erase.

Every command reads the same env vars as the pipeline (C360_HOME, C360_WAREHOUSE,
C360_LANDING_DIR, C360_DBT_TARGET, ...); see README.md. Output never contains personal data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from orchestration.instance import apply_env_defaults
from orchestration.paths import landing_dir, truth_dir


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _yesterday() -> dt.date:
    return dt.date.today() - dt.timedelta(days=1)


def cmd_generate(args: argparse.Namespace) -> int:
    from demo.generator import PROFILES, generate

    out = Path(args.out) if args.out else landing_dir()
    truth = Path(args.truth_dir) if args.truth_dir else truth_dir()
    result = generate(
        args.customers, args.seed, args.as_of, out, truth, progress=print, **PROFILES[args.profile]
    )
    print(
        f"generated {result.persons:,} persons, {sum(result.rows.values()):,} rows in "
        f"{result.seconds:.1f}s → {result.landing_dir} (truth: {result.truth_dir})"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Progress on the console, dbt and Dagster output in <C360_HOME>/logs/<run_id>.log (on the
    console with --verbose), then the summary of the as_of."""
    import dagster as dg

    from orchestration.cli_errors import read_only_warehouse
    from orchestration.dbt_invocations import full_refresh_values, run_values
    from orchestration.instance import ensure_instance
    from orchestration.pipeline import run_nightly
    from orchestration.progress import NightlyProgress
    from orchestration.run_guard import RunBusy
    from orchestration.run_logs import console_stream, logs_dir
    from orchestration.summary import NoRunForDate, render_summary

    started = time.time()
    print(f"c360 run: nightly job for as_of {args.as_of} (in-process, DuckDB) ...", flush=True)
    ensure_instance()
    if _refuse_stale_contracts() != 0 or _refresh_manifest() != 0:
        return 2
    instance = dg.DagsterInstance.get()
    log_file = None if args.verbose else logs_dir() / "{run_id}.log"
    try:
        with (
            run_values(full_refresh_values(args.full_refresh)),
            console_stream() as console,
            NightlyProgress(console, instance) as shown,
        ):
            report = run_nightly(
                args.as_of,
                instance=instance,
                log_level=args.log_level,
                progress=shown.line,
                log_file=log_file,
                on_event=shown.on_event,
            )
    except RunBusy as exc:
        print(f"c360 run: not started: {exc}", file=sys.stderr)
        return 3
    if report.log_file:
        print(f"dbt and Dagster output: {report.log_file} (--verbose prints it here)\n")
    try:
        with read_only_warehouse() as con:
            truth = truth_dir() / "ground_truth.csv"
            print(render_summary(con, args.as_of, truth, report.refusals))
    except NoRunForDate:
        print(f"no summary: the run recorded nothing for {args.as_of}")
    failed = report.checks_failed
    print(
        f"\nChecks: {len(report.checks_passed)} passed, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
    )
    where = report.log_file or "the output above"
    status = "succeeded" if report.success else f"FAILED (failed steps above; details in {where})"
    print(f"Run {report.run_id} {status} in {time.time() - started:.0f}s.")
    return 0 if report.success else 1


def cmd_summary(args: argparse.Namespace) -> int:
    """The summary of one as_of; `no run for DATE` (exit 1) when the warehouse holds none."""
    from orchestration.cli_errors import read_only_warehouse
    from orchestration.summary import render_summary

    with read_only_warehouse() as con:
        print(render_summary(con, args.as_of, truth_dir() / "ground_truth.csv"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the marketer report of one as_of; `no run for DATE` (exit 1) when there is none."""
    from orchestration.cli_errors import read_only_warehouse
    from orchestration.insight.report import write

    with read_only_warehouse() as con:
        path, charts = write(con, args.as_of)
    empty = [c.key for c in charts if c.spec is None]
    print(f"{path} ({len(charts) - len(empty)} charts, no data yet: {', '.join(empty) or 'none'})")
    return 0


def cmd_segments(args: argparse.Namespace) -> int:
    from orchestration.segments.compiler import compile_all, render
    from orchestration.segments.model import SegmentError, load_all

    try:
        segments = load_all()
    except SegmentError as exc:
        print(f"invalid segment definition:\n{exc}", file=sys.stderr)
        return 2
    if args.action == "validate":
        print(f"{len(segments)} segment(s) valid: {', '.join(s.name for s in segments)}")
        return 0
    if args.action in ("preview", "explain"):
        return _segments_inspect(args, segments)
    if args.check:
        stale = [
            str(p)
            for p, text in render(segments).items()
            if not p.exists() or p.read_text() != text
        ]
        if stale:
            print(
                "generated segment files are stale; run `c360 segments compile`:\n  "
                + "\n  ".join(stale),
                file=sys.stderr,
            )
            return 1
        print("generated segment SQL, docs and exposures are current")
        return 0
    for path in compile_all(segments):
        print(f"wrote {path}")
    return _refresh_manifest()


def cmd_contracts(args: argparse.Namespace) -> int:
    """`contracts compile [--check]`: the files generated from the contracts — each source's dbt
    sources YAML, customer_360's dbt contract and its trait list."""
    from orchestration.contracts.generated import compile_all, stale_files
    from orchestration.contracts.model import ContractError

    try:
        if args.check:
            stale = stale_files()
            if stale:
                print(
                    "files generated from the contracts are stale; run `c360 contracts compile`:\n  "
                    + "\n  ".join(map(str, stale)),
                    file=sys.stderr,
                )
                return 1
            print("generated dbt sources and customer_360 contract are current with the contracts")
            return 0
        written = compile_all()
    except ContractError as exc:
        print(f"invalid contract: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("generated dbt sources and customer_360 contract already current")
    return _refresh_manifest()


def _refuse_stale_contracts() -> int:
    """A run on a contract, source or trait the generated files do not reflect yet would build
    the old shape without a word: refuse in one line naming the command."""
    from orchestration.contracts.generated import stale_files
    from orchestration.contracts.model import ContractError

    try:
        stale = stale_files()
    except ContractError as exc:
        print(f"invalid contract: {exc}", file=sys.stderr)
        return 2
    if stale:
        names = ", ".join(p.name for p in stale)
        print(f"generated files are stale ({names}): run `c360 contracts compile`", file=sys.stderr)
        return 2
    return 0


def _refresh_manifest() -> int:
    """Parse the dbt project when its manifest is stale (a new model, segment or source)."""
    from orchestration.dbt_manifest import ManifestError, ensure_manifest

    try:
        if ensure_manifest():
            print("dbt manifest was stale: parsed the project again (dbt parse)", flush=True)
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


def _segments_inspect(args: argparse.Namespace, segments: list) -> int:
    """`segments preview NAME` / `segments explain NAME CUSTOMER_ID` on a read-only warehouse:
    exit 1 for an unknown segment/customer or another as_of, 3 while a run holds the write lock."""
    from orchestration.segments.model import load_global
    from orchestration.segments.preview import (
        PreviewError,
        WarehouseBusy,
        explain_membership,
        find_segment,
        format_explanation,
        format_preview,
        preview_segment,
        read_only_warehouse,
    )

    rules = load_global()
    try:
        find_segment(segments, args.name)
        with read_only_warehouse() as con:
            if args.action == "preview":
                preview = preview_segment(con, segments, rules, args.name, as_of=args.as_of)
                text = format_preview(preview, show_pii=args.show_pii)
            else:
                explanation = explain_membership(
                    con, segments, rules, args.name, args.customer_id, as_of=args.as_of
                )
                text = format_explanation(explanation, show_pii=args.show_pii)
    except WarehouseBusy as exc:
        print(str(exc), file=sys.stderr)
        return 3
    except PreviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text, end="")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from orchestration.activation.destinations import registry
    from orchestration.activation.planner import plan_sql
    from orchestration.activation.records import empty_contact_history_sql
    from orchestration.activation.syncs import load_all_syncs
    from orchestration.cli_errors import read_only_warehouse
    from orchestration.engine import dialect_of, table_exists

    if not args.dry_run:
        print(
            "only `c360 sync --dry-run` is available from the CLI; syncs run in the nightly job",
            file=sys.stderr,
        )
        return 2
    with read_only_warehouse() as con:
        # before any sync ran there is no history: the plan reads an empty one
        no_history = not table_exists(con, "activation", "contact_history")
        for sync in load_all_syncs():
            if registry.get(sync.destination).style == "diff":
                _print_diff_dry_run(con, sync, args.as_of)
                continue
            sql = plan_sql(sync, args.as_of, dialect=dialect_of(con))
            if no_history:
                sql = sql.replace("activation.contact_history", empty_contact_history_sql())
            rows = con.execute(
                f"select case when filter_reason is not null then 'filtered:' || filter_reason "
                f"when is_holdout then 'held_out' else 'create' end, count(*) from ({sql}) as planned group by 1 order by 1"
            ).fetchall()
            print(
                f"{sync.name} → {sync.destination} (segment {sync.segment}, {sync.channel}/{sync.purpose})"
            )
            for decision, n in rows or [("nothing to do", 0)]:
                print(f"  {decision:<28}{n:>8,}")
    return 0


def _print_diff_dry_run(con: Any, sync: Any, as_of: dt.date) -> None:
    """Creates, updates, removes and unchanged rows a diff sync (any registry destination but
    file drops) would send (diff against activation.sync_state), plus held-out and filtered
    rows; writes nothing."""
    from orchestration.activation.diff import EMPTY_STATE, diff_sql
    from orchestration.activation.planner import plan_sql, withdrawn_sql
    from orchestration.contracts.rules_sql import quote_ident
    from orchestration.engine import dialect_of, table_exists

    dialect = dialect_of(con)
    plan = plan_sql(sync, as_of, skip_recorded=False, dialect=dialect)
    ident = (
        "customer_id" if sync.identifier == "customer_id" else quote_ident("f_" + sync.identifier)
    )
    columns = ", ".join(f"{quote_ident('f_' + n)} as {quote_ident(n)}" for n in sync.fields)
    desired = (
        f"(select cast({ident} as varchar) as identifier_value, customer_id, {columns} "
        f"from ({plan}) as planned where filter_reason is null and not is_holdout)"
    )
    synced = table_exists(con, "activation", "sync_state")
    state = "activation.sync_state" if synced else EMPTY_STATE  # never synced: an empty state
    # people the destination holds who may no longer be contacted are removed
    withdrawn = f"({withdrawn_sql(sync, as_of, dialect)})" if synced else None
    sql = diff_sql(
        sync.name,
        desired,
        "identifier_value",
        list(sync.fields),
        sync.mode,
        state,
        withdrawn,
        dialect=dialect,
    )
    decisions = con.execute(
        f"select action, count(*) from ({sql}) as planned group by 1 order by 1"
    ).fetchall()
    others = con.execute(
        f"select case when filter_reason is not null then 'filtered:' || filter_reason "
        f"else 'held_out' end, count(*) from ({plan}) as planned "
        "where filter_reason is not null or is_holdout group by 1 order by 1"
    ).fetchall()
    print(
        f"{sync.name} → {sync.destination}, mode {sync.mode} (segment {sync.segment}, "
        f"{sync.channel}/{sync.purpose})"
    )
    for decision, n in (decisions + others) or [("nothing to do", 0)]:
        print(f"  {decision:<28}{n:>8,}")


def cmd_sources(args: argparse.Namespace) -> int:
    """`c360 sources load-crm | serve-shop [options]`: the generator's live source systems."""
    if args.action == "load-crm":
        from demo.live_crm import main as load_crm_main

        return load_crm_main(args.options)
    from demo.live_shop import main as serve_shop_main

    return serve_shop_main(args.options)


def cmd_identity_explain(args: argparse.Namespace) -> int:
    """`c360 identity explain <customer_id | email>`: records, links, refused links, merge log."""
    from orchestration.cli_errors import read_only_warehouse
    from orchestration.identity.explain import ExplainError, explain, format_explanation

    if not args.key:
        print("usage: c360 identity explain <customer_id | email> [--show-pii]", file=sys.stderr)
        return 2
    try:
        with read_only_warehouse() as con:
            explanation = explain(con, args.key, as_of=args.as_of)
    except ExplainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_explanation(explanation, show_pii=args.show_pii), end="")
    return 0


def cmd_identity_train(args: argparse.Namespace) -> int:
    """`c360 identity train`: train the probabilistic model on the warehouse's records now."""
    import duckdb

    from orchestration.cli_errors import busy, is_lock_error, no_warehouse
    from orchestration.engine import table_exists
    from orchestration.identity import config as identity_config
    from orchestration.identity import training
    from orchestration.paths import warehouse_path
    from orchestration.warehouse import engine, open_warehouse

    if engine() == "duckdb" and not warehouse_path().exists():
        raise no_warehouse(warehouse_path())
    settings = identity_config.load().probabilistic
    try:
        with open_warehouse() as con:
            as_of = args.as_of or _yesterday()
            if args.as_of is None and table_exists(con, "marts", "customer_id_map"):
                rows = con.execute("select max(as_of) from marts.customer_id_map").fetchall()
                as_of = rows[0][0] or as_of
            outcome = training.train(con, as_of, settings, force=True)
    except duckdb.IOException as exc:
        if is_lock_error(exc):
            raise busy(warehouse_path()) from exc
        raise
    attempt = outcome.attempt
    assert attempt is not None
    print(attempt.describe())
    for row in attempt.mu_table:
        m = "-" if row["m"] is None else f"{row['m']:.4g}"
        u = "-" if row["u"] is None else f"{row['u']:.4g}"
        level = row["level"][:70]
        print(f"  {row['comparison']:<14} {level:<70} m {m:>9}  u {u:>9}  w {row['weight']}")
    if outcome.refused:
        using = outcome.in_use.describe() if outcome.in_use else "the shipped fixed model"
        print(f"refused: the model in use stays {using}", file=sys.stderr)
        return 1
    return 0


def cmd_identity(args: argparse.Namespace) -> int:
    from orchestration.identity.evaluate import SCOPES, evaluate_each
    from orchestration.warehouse import engine, open_warehouse

    if args.action == "explain":
        return cmd_identity_explain(args)
    if args.action == "train":
        return cmd_identity_train(args)
    if args.key:
        print(f"identity evaluate takes no argument (got {args.key!r})", file=sys.stderr)
        return 2
    truth = Path(args.truth) if args.truth else truth_dir() / "ground_truth.csv"
    if not truth.exists():
        print(f"truth file not found: {truth}", file=sys.stderr)
        return 2
    # read-only on DuckDB; Postgres refuses the session's temp tables in a read-only one
    with open_warehouse(read_only=engine() == "duckdb") as con:
        try:
            scores = dict(
                zip(SCOPES, evaluate_each(con, truth, *(((), s) for s in SCOPES)), strict=True)
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    a, i = scores["all"], scores["identified"]
    rows = [
        ("records scored", a.records_scored, i.records_scored),
        ("in truth, not resolved", a.records_unmatched_in_truth, None),
        ("true persons", a.true_persons, i.true_persons),
        ("customers resolved", a.predicted_customers, i.predicted_customers),
        ("largest true person", a.largest_person, i.largest_person),
        ("largest customer", a.largest_customer, i.largest_customer),
        ("pairwise precision", a.precision, i.precision),
        ("pairwise recall", a.recall, i.recall),
        ("pairwise F1", a.f1, i.f1),
    ]
    print(f"{'':<24}{'all records':>14}{'identified':>14}")
    for label, x, y in rows:
        cells = [
            "" if v is None else (f"{v:.4f}" if isinstance(v, float) else f"{v:,}") for v in (x, y)
        ]
        print(f"{label:<24}{cells[0]:>14}{cells[1]:>14}")
    print(
        "identified = without anonymous ids that carry no link (never seen with a login): no rule "
        "has evidence to place them."
    )
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from orchestration.privacy.queue import queue_request

    given = [(k, v) for k, v in (("email", args.email), ("phone", args.phone),
                                  ("customer_id", args.customer_id)) if v]  # fmt: skip
    if len(given) != 1:
        print("c360 erase: give exactly one of --email, --phone, --customer-id", file=sys.stderr)
        return 2
    request_id, path = queue_request(landing_dir(), *given[0], args.as_of)
    # the file holds the identifier; the output names only the request and the folder
    print(f"queued erasure request {request_id} ({given[0][0]}) in {path.parent}; "
          f"carried out by the nightly of {args.as_of} (docs/privacy.md)")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="c360", description="c360 customer data platform")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write deterministic sample landing files + ground truth")
    g.add_argument("--customers", type=int, default=50_000)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--as-of", type=_date, default=_yesterday())
    g.add_argument("--out", help="landing folder (default C360_LANDING_DIR)")
    g.add_argument("--truth-dir", help="ground-truth folder (default C360_HOME/truth)")
    g.add_argument(
        "--profile",
        choices=[
            "default",
            "clv",
            "send_time",
            "lead_score",
            "treatment",
            "person_link",
            "person_dedup",
        ],
        default="default",
        help="clv: shop orders from a planted BG/NBD + Gamma-Gamma process; send_time: email "
        "opens and web sessions at a planted preferred hour of the week; lead_score: orders after "
        "a cut-off drawn from a planted logistic conversion model; treatment: members a sync sent to "
        "on earlier nights (this home's contact_history) convert with a planted lift "
        "(docs/generator.md); "
        "person_link / person_dedup: person-only CRM and loyalty records of the second noise "
        "profile, two sources to link / one source with duplicates (docs/identity.md)",
    )
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser(
        "run", help="run the nightly job in-process for one as_of and print a summary"
    )
    r.add_argument("--as-of", type=_date, default=_yesterday())
    r.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Dagster log level (of the run's log file; of the console with --verbose)",
    )
    r.add_argument(
        "--verbose",
        action="store_true",
        help="dbt and Dagster output on the console instead of <C360_HOME>/logs/<run_id>.log",
    )
    r.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental dbt models from all of raw (docs/incremental.md)",
    )
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("summary", help="print the summary of an as_of from the warehouse")
    s.add_argument("--as-of", type=_date, default=_yesterday())
    s.set_defaults(func=cmd_summary)

    rep = sub.add_parser(
        "report", help="write the marketer report of an as_of to <reports>/<as_of>/index.html"
    )
    rep.add_argument("--as-of", type=_date, default=_yesterday())
    rep.set_defaults(func=cmd_report)

    seg = sub.add_parser(
        "segments", help="validate or compile segment YAML; preview or explain a segment"
    )
    seg_sub = seg.add_subparsers(dest="action", required=True)
    seg_sub.add_parser("validate", help="validate every segment YAML file")
    seg_compile = seg_sub.add_parser("compile", help="write the generated segment SQL models")
    seg_compile.add_argument(
        "--check",
        action="store_true",
        help="fail if the generated SQL, docs or exposures are stale",
    )
    seg_preview = seg_sub.add_parser(
        "preview", help="members, holdout, samples and overlaps of a segment (warehouse, read-only)"
    )
    seg_explain = seg_sub.add_parser(
        "explain", help="why one customer is or is not in a segment (warehouse, read-only)"
    )
    for inspect in (seg_preview, seg_explain):
        inspect.add_argument("name", help="segment name (dbt_project/segments/<name>.yml)")
    seg_explain.add_argument("customer_id", help="a customer_id of marts.customer_360")
    for inspect in (seg_preview, seg_explain):
        inspect.add_argument(
            "--as-of", type=_date, help="must be the as_of the warehouse holds (default: it)"
        )
        inspect.add_argument(
            "--show-pii", action="store_true", help="print emails and PII traits unmasked"
        )
    seg.set_defaults(func=cmd_segments, check=False)

    con = sub.add_parser(
        "contracts", help="generate dbt sources YAML and customer_360's contract from the contracts"
    )
    con_sub = con.add_subparsers(dest="action", required=True)
    con_compile = con_sub.add_parser(
        "compile",
        help="write each source's _<source>__sources.yml from data_contracts/sources/, and "
        "customer_360's dbt contract and trait list from its mart contract and traits/",
    )
    con_compile.add_argument(
        "--check", action="store_true", help="fail if a generated file is stale"
    )
    con.set_defaults(func=cmd_contracts)

    sy = sub.add_parser("sync", help="show what each sync would send")
    sy.add_argument("--dry-run", action="store_true")
    sy.add_argument("--as-of", type=_date, default=_yesterday())
    sy.set_defaults(func=cmd_sync)

    src = sub.add_parser(
        "sources",
        help="stand up the live sources locally: load-crm (Postgres) | serve-shop (HTTP API)",
        description=(
            "load-crm: load the generated CRM into the Postgres of C360_CRM_DSN "
            "[--landing DIR] [--schema S]. serve-shop: serve the generated shop as its HTTP API "
            "[--landing DIR] [--port P] [--rate-limit-every N] [--retry-after S] [--log FILE]; "
            "token from C360_SHOP_API_TOKEN. See docs/sources.md."
        ),
    )
    src.add_argument("action", choices=["load-crm", "serve-shop"])
    src.add_argument("options", nargs=argparse.REMAINDER, help="options of the action")
    src.set_defaults(func=cmd_sources)

    ident = sub.add_parser("identity", help="identity resolution tools")
    ident.add_argument("action", choices=["evaluate", "explain", "train"])
    ident.add_argument(
        "key", nargs="?", help="explain: a customer_id (live or retired) or an email"
    )
    ident.add_argument(
        "--truth", help="evaluate: CSV with source,entity,source_record_id,person_id"
    )
    ident.add_argument(
        "--show-pii", action="store_true", help="explain: print names, emails, phones unmasked"
    )
    ident.add_argument(
        "--as-of",
        type=_date,
        help="explain: as_of of the resolved graph (default: the latest); train: the model's as_of",
    )
    ident.set_defaults(func=cmd_identity)

    er = sub.add_parser(
        "erase",
        help="queue a right-to-erasure request (one of --email/--phone/--customer-id)",
        description="Queues the request as a landing file of consent/erasure_requests; the "
        "nightly of --as-of deletes the person everywhere and records a receipt in "
        "audit.erasure_receipts (docs/privacy.md).",
    )
    er.add_argument("--email")
    er.add_argument("--phone")
    er.add_argument("--customer-id")
    er.add_argument(
        "--as-of", type=_date, default=dt.date.today(), help="the nightly that carries it out"
    )
    er.set_defaults(func=cmd_erase)
    return p


def main(argv: list[str] | None = None) -> int:
    """The exit code of the command; every error is one line on stderr (orchestration/cli_errors)."""
    from orchestration.cli_errors import guarded, one_line_usage_errors

    apply_env_defaults()
    with one_line_usage_errors():
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, or a usage error already printed as one line
            return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
        return guarded(args.command, args.func, args)


if __name__ == "__main__":
    sys.exit(main())
