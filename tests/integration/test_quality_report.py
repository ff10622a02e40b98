"""The data-quality report of a night with injected defects: one HTML page per source entity,
linked from the gate check's and the staged asset's metadata, whose per-rule counts are the
quarantine table's, whose gates are the check's (a blocked one with its message), and which holds
masked sample rows but no raw e-mail address."""

import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.contracts.model import all_source_contracts
from tests.integration.conftest import AS_OF, make_home

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group(name="quality_report")]

BAD_EMAILS = (
    "report.canary.one.example.org",
    "report canary two@example",
    "report.canary.three@@example.org",
)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{2,}@[A-Za-z0-9-]+\.[A-Za-z]")


class ReportParser(HTMLParser):
    """Rows of the report's tables: each <tr> with its attributes, cell texts and messages."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[dict, list[str], list[str]]] = []
        self.tables: list[dict] = []
        self.text: dict[str, str] = {}  # element id -> its text
        self._row: tuple[dict, list[str], list[str]] | None = None
        self._buf: list[str] | None = None
        self._div = False
        self._id: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append(a)
        elif tag == "tr":
            self._row = (a | {"table": self.tables[-1].get("id", "")}, [], [])
        elif tag in ("td", "th") and self._row is not None:
            self._buf = []
        elif tag == "div" and a.get("class") == "message":
            self._div, self._msg = True, []
        if "id" in a and tag in ("span", "p", "td"):
            self._id, self._idbuf = a["id"], []

    def handle_data(self, data):
        if self._buf is not None:
            self._buf.append(data)
        if self._div:
            self._msg.append(data)
        if self._id:
            self._idbuf.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._buf is not None and self._row is not None:
            self._row[1].append("".join(self._buf).strip())
            self._buf = None
        elif tag == "div" and self._div:
            self._row[2].append("".join(self._msg).strip())
            self._div = False
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        if self._id and tag in ("span", "p", "td"):
            self.text[self._id] = "".join(self._idbuf).strip()
            self._id = None

    def where(self, attr: str) -> dict[str, tuple[dict, list[str], list[str]]]:
        return {r[0][attr]: r for r in self.rows if attr in r[0]}


def _parse(path: Path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _inject(home) -> None:
    """Renamed column (shop orders: blocks), duplicates (web events: blocks) and three bad
    e-mail addresses (crm contacts: quarantined, the batch passes and publishes)."""
    orders = next((home.landing / "shop" / "orders").rglob("*.jsonl"))
    orders.write_text(orders.read_text().replace('"currency":', '"currency_code":'))
    events = next((home.landing / "web" / "events").rglob("*.jsonl"))
    resent = events.with_name("part-00001.jsonl")
    resent.write_text("".join(events.read_text().splitlines(keepends=True)[:400]))
    contacts = next((home.landing / "crm" / "contacts").rglob("*.csv"))
    with contacts.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, bad in enumerate(BAD_EMAILS):
        rows[10 + 7 * i]["email"] = bad
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    contacts.write_text(buf.getvalue())


def _check_evaluations(instance, run_id: str) -> dict[str, object]:
    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = entry.dagster_event.event_specific_data
        out[ev.asset_check_key.to_user_string()] = ev
    return out


def _step_failures(instance, run_id: str) -> dict[str, str]:
    """Why steps failed (the message of an assertion about missing evaluations)."""
    return {
        e.dagster_event.step_key: str(e.dagster_event.event_specific_data.error)[:1500]
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    }


def _materializations(instance, run_id: str) -> dict[str, dict]:
    out = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        m = entry.dagster_event.event_specific_data.materialization
        out[m.asset_key.to_user_string()] = m.metadata
    return out


def _rule_counts(con, sql: str, params: list) -> dict[str, int]:
    return dict(con.execute(sql, params).fetchall())


def test_report_per_entity_matches_quarantine_and_gates_and_masks_pii(tmp_path, monkeypatch):
    from demo.generator import generate
    from orchestration.pipeline import run_nightly

    home = make_home(tmp_path, monkeypatch)
    generate(300, 7, AS_OF, home.landing, home.truth, progress=None)
    _inject(home)
    report = run_nightly(AS_OF, instance=home.instance, log_level="CRITICAL")
    assert not report.success
    checks = _check_evaluations(home.instance, report.run_id)
    assert len(checks) >= len(all_source_contracts()), _step_failures(home.instance, report.run_id)
    materialized = _materializations(home.instance, report.run_id)

    pages = {}
    for c in all_source_contracts():
        check = checks[f"staged/{c.source}/{c.entity}:meets_contract"]
        link = check.metadata["quality_report"]
        assert isinstance(link, dg.PathMetadataValue)
        path = Path(link.path)
        assert path == home.home / "reports" / AS_OF.isoformat() / report.run_id / f"{c.id}.html"
        # the asset's materialization links the same page (the gate rewrote it in place)
        assert materialized[f"staged/{c.source}/{c.entity}"]["quality_report"].path == str(path)
        pages[c.id] = (c, check, _parse(path), path.read_text(encoding="utf-8"))

    blocked = {cid for cid, (_, check, _, _) in pages.items() if not check.passed}
    assert {"shop__orders", "web__events"} <= blocked

    with duckdb.connect(str(home.warehouse), read_only=True) as con:
        for cid, (c, check, page, html) in pages.items():
            assert page.text["as_of"] == AS_OF.isoformat()
            assert page.text["run_id"] == report.run_id
            assert page.text["verdict"] == ("blocked" if cid in blocked else "passed"), cid
            rules = {k: int(cells[4]) for k, (_, cells, _) in page.where("data-rule").items()}
            assert {r.rule_id for r in c.rules} <= set(rules), cid
            shown = {k: n for k, n in rules.items() if n}
            batch = con.execute(
                "select batch_id, extracted, loaded, quarantined, deduplicated "
                "from audit.ingestion_audit where contract_id = ? and run_id = ?",
                [cid, report.run_id],
            ).fetchone()
            counts = {k: int(cells[1]) for k, (_, cells, _) in page.where("data-count").items()}
            if cid in blocked:
                assert batch is None, f"{cid} blocked but published"
                # nothing reached quarantine: the counts are those of the staged verdicts
                expected = _rule_counts(
                    con,
                    f"select r, count(*) from (select unnest(_failed_rules) r from "
                    f"staging.batch__{cid}__verdicts where not _in_quarantine) group by r",
                    [],
                )
            else:
                expected = _rule_counts(
                    con,
                    f"select r, count(*) from (select unnest(_failed_rules) r from "
                    f"quarantine.{cid} where _batch_id = ?) group by r",
                    [batch[0]],
                )
                assert (counts["extracted"], counts["loaded"], counts["quarantined"]) == batch[
                    1:4
                ], cid
                assert counts["deduplicated"] == batch[4], cid
            assert shown == expected, cid

            # every gate is listed; those failing are exactly the check's, with its messages
            gates = page.where("data-gate")
            failing = {g for g, (attrs, _, _) in gates.items() if attrs["data-verdict"] == "fail"}
            assert failing == {d["rule"] for d in check.metadata["failure_details"].data}, cid
            for _, _, messages in gates.values():
                for m in messages:
                    assert m in check.description, (cid, m)
            assert not EMAIL.search(html), f"unmasked e-mail in the {cid} report"

    # the blocked gates with their message: the renamed column and the duplicates
    _, _, orders, _ = pages["shop__orders"]
    attrs, _, messages = orders.where("data-gate")["schema.renamed_column"]
    assert attrs["data-verdict"] == "fail"
    assert any("currency_code" in m and "renamed column" in m for m in messages), messages
    _, _, events, _ = pages["web__events"]
    attrs, _, messages = events.where("data-gate")["duplicates.max_share"]
    assert attrs["data-verdict"] == "fail" and "event_id" in messages[0]

    # the bad e-mails: counted, shown as masked sample rows, never in clear
    c, _, contacts, html = pages["crm__contacts"]
    email_rule = next(r.rule_id for r in c.rules if r.column == "email" and r.kind == "pattern")
    assert int(contacts.where("data-rule")[email_rule][1][4]) >= len(BAD_EMAILS)
    assert f'data-rule-samples="{email_rule}"' in html
    for bad in BAD_EMAILS:
        assert bad.split("@")[0] not in html
    assert "***" in html

    # the run's index lists every entity page with its verdict
    run_dir = home.home / "reports" / AS_OF.isoformat() / report.run_id
    index = _parse(run_dir / "index.html").where("data-contract")
    assert set(index) == set(pages)
    assert {k for k, (_, cells, _) in index.items() if cells[1] == "blocked"} == blocked
