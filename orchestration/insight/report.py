"""The marketer report: one self-contained HTML file per as_of,
`<reports_dir>/<as_of>/index.html` (paths.reports_dir: `$C360_HOME/reports` by default).

Charts are Altair (Vega-Lite) specs rendered in the browser by the Vega runtime inlined in the
file: Vega, Vega-Lite 5 and vega-embed as vendored by splink (in the lock), so the report opens
offline, from disk or as an e-mail attachment, without a CDN. A chart without data says
"no data yet" and why.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from orchestration.engine import Connection
from orchestration.insight import report_charts as charts
from orchestration.insight import report_data
from orchestration.paths import reports_dir
from orchestration.summary import NoRunForDate, runs_held

# Vega's runtime as splink 5 ships it (splink/internals/files/external_js, BSD-3-Clause).
_RUNTIME = ("vega@5.31.0", "vega-lite@5.2.0", "vega-embed@6.20.2")
NO_DATA = "no data yet"


@dataclass(frozen=True)
class Chart:
    """One section of the report."""

    key: str
    title: str
    explains: str
    section: report_data.Section
    spec: dict | None


def _runtime() -> str:
    folder = resources.files("splink") / "internals" / "files" / "external_js"
    return "\n".join(f"<script>{(folder / name).read_text()}</script>" for name in _RUNTIME)


def _json(value: object) -> str:
    # Safe inside <script>: no "</script>" or "<!--" can close or open anything.
    return (
        json.dumps(value, default=str)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def charts_of(data: report_data.ReportData) -> list[Chart]:
    """The report's charts, in reading order, with a spec where there is data."""

    def spec(section: report_data.Section, build) -> dict | None:
        return build(section.frame) if section.frame is not None else None

    return [
        Chart(
            "segment_sizes",
            "Segment sizes over time",
            "Members of each segment per night, holdout included (audit.segment_stats).",
            data.segment_sizes,
            spec(data.segment_sizes, charts.segment_sizes),
        ),
        Chart(
            "clv",
            "Customer lifetime value",
            "Customers by predicted 12-month value (BG/NBD + Gamma-Gamma, marts.customer_clv); "
            "customers without an order have no prediction.",
            data.clv,
            spec(data.clv, charts.clv_distribution),
        ),
        Chart(
            "retention",
            "Retention by cohort",
            "Share of each first-order month's customers who ordered again N months later "
            "(marts.kpi_retention_cohorts); the current month is still running.",
            data.retention,
            spec(data.retention, charts.retention_cohorts),
        ),
        Chart(
            "lift",
            "Campaign lift",
            "Conversion of treated minus held-out members in the attribution window, over all "
            "measured nights of each sync, with its 95 % interval (marts.campaign_lift). An "
            "interval that crosses 0 shows no proven effect.",
            data.lift,
            spec(data.lift, charts.lift_intervals),
        ),
        Chart(
            "calibration",
            "Lead score calibration",
            "The lead score's backtest: per score bin, the mean score against the share that "
            "converted (audit.lead_score_fits). On the diagonal, a score of 20 % means 1 in 5.",
            data.calibration,
            spec(data.calibration, charts.lead_score_calibration),
        ),
    ]


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 980px; color: #1f2328; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } .sub { color: #59636e; margin-top: 0; }
section { border-top: 1px solid #d1d9e0; padding: 1rem 0; } h2 { font-size: 1.2rem; }
.explains { color: #59636e; } dl { display: grid; grid-template-columns: max-content auto;
gap: 0.2rem 1rem; } dt { color: #59636e; } dd { margin: 0; font-weight: 600; }
.no-data { padding: 2rem; background: #f6f8fa; border: 1px dashed #d1d9e0; color: #59636e; }
"""


def _section(chart: Chart) -> str:
    facts = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
        for k, v in chart.section.facts.items()
    )
    if chart.spec is None:
        body = (
            f'<div class="no-data" data-chart="{chart.key}" data-empty="true">'
            f"<strong>{NO_DATA}</strong>: {html.escape(chart.section.empty_reason)}</div>"
        )
    else:
        body = f'<div class="chart" id="chart-{chart.key}" data-chart="{chart.key}"></div>'
    return (
        f'<section id="{chart.key}"><h2>{html.escape(chart.title)}</h2>'
        f'<p class="explains">{html.escape(chart.explains)}</p>'
        f"{f'<dl>{facts}</dl>' if facts else ''}{body}</section>"
    )


def render(
    data: report_data.ReportData,
    generated_at: dt.datetime | None = None,
    items: list[Chart] | None = None,
) -> str:
    """The report as one HTML document (items: charts_of(data) when already built)."""
    items = items if items is not None else charts_of(data)
    specs = {c.key: c.spec for c in items if c.spec is not None}
    stamp = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    script = f"""
<script>
const specs = {_json(specs)};
Promise.all(Object.entries(specs).map(([key, spec]) =>
  vegaEmbed("#chart-" + key, spec, {{renderer: "svg", actions: false}})
    .then(() => 1, err => {{
      const el = document.getElementById("chart-" + key);
      el.className = "no-data"; el.dataset.error = "true";
      el.textContent = "chart failed to render: " + err;
      return 0;
    }})))
  .then(done => {{ document.body.dataset.rendered = done.reduce((a, b) => a + b, 0); }});
</script>"""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>c360 report {data.as_of}</title><style>{_STYLE}</style>"
        f"{_runtime()}</head><body>"
        f"<h1>c360 report — night of {data.as_of}</h1>"
        f'<p class="sub">Generated {stamp} from the warehouse. Charts are interactive: hover '
        "for values.</p>" + "".join(_section(c) for c in items) + script + "</body></html>"
    )


def report_path(as_of: dt.date, root: Path | None = None) -> Path:
    """Where the report of as_of is written."""
    return (root or reports_dir()) / as_of.isoformat() / "index.html"


def write(con: Connection, as_of: dt.date, root: Path | None = None) -> tuple[Path, list[Chart]]:
    """Write the report of as_of (atomically); NoRunForDate when no nightly recorded as_of."""
    if as_of not in runs_held(con):
        raise NoRunForDate(as_of, runs_held(con))
    data = report_data.collect(con, as_of)
    items = charts_of(data)
    path = report_path(as_of, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(data, items=items), encoding="utf-8")
    tmp.replace(path)
    return path, items
