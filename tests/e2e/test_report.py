"""The marketer report opened in headless Chromium, offline: every chart renders as SVG with its
marks (the Vega runtime inlined in the file, nothing fetched), the screenshot is not blank, and a
warehouse without insight marts shows "no data yet" in every chart's place."""

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import duckdb
import numpy as np
import pytest

from orchestration.insight import report
from tests.unit.test_report import AS_OF, build_warehouse

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group(name="report")]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHARTS = ("segment_sizes", "clv", "retention", "lift", "calibration")


def _chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium missing: `make test` installs Debian's chromium package"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # offline proof: any request leaving the machine fails
        "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={user_dir}", "--virtual-time-budget=15000", "--window-size=1100,2600",
    ]  # fmt: skip
    return subprocess.run(
        [exe, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _pixels(png: Path) -> np.ndarray:
    """RGB(A) pixels of an 8-bit, non-interlaced PNG (what Chromium writes), unfiltered."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    channels = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, -1)
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        row = np.zeros(stride, dtype=np.int32)
        if kind in (0, 2):  # None, Up: vectorised
            row = (line + (prev if kind == 2 else 0)) % 256
        else:
            for x in range(stride):
                a = row[x - channels] if x >= channels else 0
                b = prev[x]
                c = prev[x - channels] if x >= channels else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) // 2
                else:  # Paeth
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                row[x] = (line[x] + pred) % 256
        out[y] = row
        prev = row
    return out.reshape(height, width, channels)[:, :, :3]


def _sections(dom: str) -> dict[str, str]:
    parts = re.split(r'<section id="([a-z_]+)">', dom)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    build_warehouse(root / "w.duckdb")
    con = duckdb.connect(str(root / "w.duckdb"))
    try:
        path, _ = report.write(con, AS_OF, root=root / "reports")
    finally:
        con.close()
    return path


def test_every_chart_renders_as_svg_with_marks(full_report, tmp_path):
    dom = _chromium("--dump-dom", full_report.as_uri(), user_dir=tmp_path / "u").stdout
    assert 'data-error="true"' not in dom, "a chart failed to render"
    assert 'data-rendered="5"' in dom, "not every chart rendered"
    sections = _sections(dom)
    assert tuple(sections) == CHARTS
    for key, html in sections.items():
        assert "<svg" in html, f"{key}: no SVG"
        marks = len(re.findall(r'role="graphics-symbol"', html))
        assert marks >= 5, f"{key}: {marks} marks"
        assert report.NO_DATA not in html
    # the lift chart draws one interval and one point per sync, and the zero line
    assert sections["lift"].count('aria-roledescription="rule mark"') == 3
    assert sections["lift"].count('aria-roledescription="point"') == 2


def test_screenshot_is_not_blank(full_report, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "marketer_report.png"
    png.unlink(missing_ok=True)
    _chromium(f"--screenshot={png}", full_report.as_uri(), user_dir=tmp_path / "u")
    pixels = _pixels(png)
    ink = (pixels < 235).any(axis=2)  # anything not (near) white
    assert ink.mean() > 0.03, f"only {ink.mean():.1%} of the page is drawn"
    # the charts' colours, not only black text: bars, lines and cells are blue
    blue = (pixels[:, :, 2] > pixels[:, :, 0] + 40) & (pixels[:, :, 2] > 120)
    assert blue.mean() > 0.005, f"only {blue.mean():.2%} of the page is chart colour"


def test_a_warehouse_without_insight_says_no_data_yet(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema audit")
    con.execute("create table audit.ingestion_batches as select ?::date as as_of", [AS_OF])
    try:
        path, _ = report.write(con, AS_OF, root=tmp_path / "reports")
    finally:
        con.close()
    dom = _chromium("--dump-dom", path.as_uri(), user_dir=tmp_path / "u").stdout
    assert 'data-rendered="0"' in dom
    sections = _sections(dom)
    assert tuple(sections) == CHARTS
    for key, html in sections.items():
        assert f"<strong>{report.NO_DATA}</strong>" in html, key
        assert "<svg" not in html, key
