"""The HTML report: a Jinja template with inline SVG charts whose numbers come from the budget, the memory
plan and the board object; self-contained; rendered by a headless Chromium when one is installed."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from sepgen import boards, memory_report, report
from sepgen.board_report import board_report
from sepgen.budget import budget
from sepgen.frontends.builder import GraphBuilder
from util import quantized, rand

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def model():
    """conv stem, two depthwise-separable blocks (one streamed chain), max pool, GAP, dense + softmax."""
    rng = np.random.default_rng(11)
    b = GraphBuilder((16, 16, 3), name="html<&>model")
    y = b.conv2d("stem", b.input, rand(rng, 3, 3, 3, 8), rand(rng, 8), 1, 1, "same", "relu")
    y = b.separable_conv2d("sep_a", y, rand(rng, 3, 3, 8, 1), rand(rng, 1, 1, 8, 16), rand(rng, 16), activation="relu")
    y = b.max_pool2d("pool", y, 2, 2)
    y = b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 16, 1), rand(rng, 16), 1, 1, "same", "relu")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 16, 24), rand(rng, 24), activation="relu")
    y = b.dense("fc", b.global_avg_pool2d("gap", y), rand(rng, 24, 5), rand(rng, 5), "softmax")
    q, _ = quantized(b.build(y), rng)
    memory = memory_report.memory_plan(q, "auto")
    bud = budget(q, arena_bytes=memory["arena_bytes"], prefix="net")
    board = board_report(boards.get_board("nrf52840"), q, bud, None, "auto", False, measure=False)
    return bud, memory, board, report.to_html(bud, memory, board)


class _Page(HTMLParser):
    """Collects the table cells per row (by table id) and every tag/attribute seen."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.table: str | None = None
        self.cell: list[str] | None = None
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self.table = a.get("id") or ""
            self.tables[self.table] = []
        elif tag == "tr" and self.table is not None:
            self.tables[self.table].append([])
        elif tag in ("td", "th") and self.table is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[self.table][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _svgs(page: str) -> dict[str, ET.Element]:
    """Every inline <svg> of the page, parsed as XML (so each is well-formed), by id."""
    return {e.get("id"): e for e in (ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, re.S))}


def _bars(svg: ET.Element, cls: str) -> list[ET.Element]:
    return [r for r in svg.iter(SVG + "rect") if r.get("class") == cls and r.get("data-value") is not None]


def test_charts_show_the_budget(model):
    b, memory, board, page = model
    svgs = _svgs(page)
    assert {"mac-chart", "param-chart", "ram-chart", "flash-chart"} <= set(svgs)
    # MACs and params: a block (both layers) vs the standard convolution it replaces; other layers with any
    blocks = {blk.layers[0]: blk for blk in b.blocks}
    expected_macs, expected_params = [], []
    for row in b.layers:
        if row.name in blocks:
            blk = blocks[row.name]
            expected_macs.append((blk.label, blk.macs, blk.standard_macs))
            expected_params.append((blk.label, blk.params, blk.standard_params))
        elif row.block is None:
            if row.macs or row.standard_macs:
                expected_macs.append((row.name, row.macs, row.standard_macs))
            if row.params or row.standard_params:
                expected_params.append((row.name, row.params, row.standard_params))
    assert [e[0] for e in expected_macs] == ["stem", "sep1", "sep2", "fc"]
    for chart, expected in (("mac-chart", expected_macs), ("param-chart", expected_params)):
        groups = [g for g in svgs[chart].iter(SVG + "g") if g.get("class") == "group"]
        got = [(g.get("data-label"), int(_bars(g, "own")[0].get("data-value")),
                int(_bars(g, "standard")[0].get("data-value"))) for g in groups]
        assert got == expected, chart
        # bar lengths are proportional to the values (one scale per chart), the longest spans the bar area
        bars = _bars(svgs[chart], "own") + _bars(svgs[chart], "standard")
        per_unit = {round(float(r.get("width")) / int(r.get("data-value")), 4) for r in bars if int(r.get("data-value"))}
        assert len(per_unit) == 1, per_unit
        assert max(float(r.get("width")) for r in bars) == pytest.approx(460.0, abs=0.01)

    # RAM: one stacked bar per step of the memory plan; the arena line is the budget's RAM
    steps = [g for g in svgs["ram-chart"].iter(SVG + "g") if g.get("class") == "step"]
    assert [int(g.get("data-value")) for g in steps] == [s["arena_bytes"] for s in memory["steps"]]
    for g, step in zip(steps, memory["steps"]):
        segments = [r for r in g.iter(SVG + "rect")]
        assert [(r.get("data-buffer"), int(r.get("data-value"))) for r in segments] == [
            (x["buffer"], x["bytes"]) for x in step["live"] if x["where"] == "arena"]
    lines = {ln.get("class"): int(ln.get("data-value")) for ln in svgs["ram-chart"].iter(SVG + "line")
             if ln.get("data-value")}
    assert lines["arena"] == b.totals.ram_bytes == memory["arena_bytes"]
    assert lines.get("layer-arena", memory["layer_arena_bytes"]) == memory["layer_arena_bytes"]

    # flash: weights + bias + requantization = the budget's constants; code from the board object
    flash = {r.get("data-kind"): int(r.get("data-value")) for r in svgs["flash-chart"].iter(SVG + "rect")
             if r.get("data-kind")}
    assert flash["weights"] + flash["bias"] + flash["requant"] == b.totals.flash_bytes
    assert flash["weights"] == sum(r.weight_bytes for r in b.layers) > 0 and flash["bias"] > 0 and flash["requant"] > 0
    assert flash["code"] == board["flash"]["code_bytes"]


def test_tables_and_verdict_match_the_text_report(model):
    b, memory, board, page = model
    p = _Page()
    p.feed(page)
    rows = p.tables["layers"][1:]
    expected = [[getattr(r, f) for f, _, _ in report.columns(b)] for r in report.table(b)]
    assert rows == expected
    assert [r[0] for r in p.tables["blocks"][1:]] == ["sep1", "sep2"]
    assert [int(r[2].replace(",", "")) for r in p.tables["steps"][1:]] == [s["arena_bytes"] for s in memory["steps"]]
    assert "NET_ARENA_SIZE" in page and "html&lt;&amp;&gt;model" in page and "html<&>model" not in page
    verdict = re.search(r'id="board-verdict".*?class="v">([^<]+)<', page, re.S).group(1)
    assert verdict == ("fits" if board["fits"] else "does not fit")
    assert "(estimate)" in page and f"~{board['latency']['ms']:g} ms" in page


def test_page_is_self_contained(model):
    page = model[3]
    assert report.is_html_report(page.encode())
    p = _Page()
    p.feed(page)
    tags = {t for t, _ in p.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not [a for _, attrs in p.tags for k, a in attrs.items() if k in ("src", "href")]
    urls = set(re.findall(r"https?://[^\s\"')]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert "@import" not in page and "url(" not in page


def test_no_html_is_built_in_python():
    """The page's markup lives in templates/report/*.j2; Python modules hold no HTML/SVG tags."""
    for path in (ROOT / "sepgen").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"<(table|tr|td|th|svg|rect|body|div|h1|p)[ >]", text), path


# ------------------------------------------------------------------ rendered in a browser
def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit truecolour PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line[k] for k in range(stride) if k % channels < 3))
        prev = line
    return width, height, rows


def test_chromium_renders_the_page(model, tmp_path):
    """Headless Chromium (Debian `chromium`) screenshots the page: it is not blank and shows the charts' bars
    (the 'this model' blue, #2f6fde)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(chromium is not None, "tool 'chromium'")
    page = tmp_path / "report.html"
    page.write_text(model[3])
    shot = tmp_path / "shot.png"
    env = dict(os.environ, HOME=str(tmp_path))  # a profile directory of its own
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,1400",
                           f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=180, env=env)
    assert shot.is_file(), proc.stderr.decode(errors="replace")[-2000:]
    width, height, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 1400)
    pixels = [bytes(r[i:i + 3]) for r in rows[::4] for i in range(0, len(r), 12)]
    ink = sum(1 for p in pixels if p != b"\xff\xff\xff") / len(pixels)
    blue = sum(1 for p in pixels if abs(p[0] - 0x2F) < 24 and abs(p[1] - 0x6F) < 24 and abs(p[2] - 0xDE) < 24)
    assert ink > 0.05, ink  # not a blank page
    assert blue > 20, blue  # the SVG bars were drawn


def test_cli_html_carries_the_plan_and_the_board(tmp_path):
    """`report DIR --html FILE --board NAME`: the page has the RAM chart of the DIR's schedule and the verdict."""
    import json
    import subprocess
    import sys

    import sepgen

    rng = np.random.default_rng(2)
    b = GraphBuilder((10, 10, 2), name="cli")
    y = b.depthwise_conv2d("dw", b.input, rand(rng, 3, 3, 2, 1), rand(rng, 2), 1, 1, "same", "relu")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 2, 6), rand(rng, 6), activation="relu")
    q, _ = quantized(b.build(b.dense("fc", b.global_avg_pool2d("gap", y), rand(rng, 6, 3), rand(rng, 3))), rng)
    sepgen.generate(q, tmp_path / "gen", prefix="cli")
    cli = [sys.executable, "-m", "sepgen.cli", "report", str(tmp_path / "gen"), "--board", "pico2", "--estimate"]
    proc = subprocess.run(cli + ["--html", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text()
    doc = json.loads(subprocess.run(cli + ["--json"], capture_output=True, text=True, timeout=300).stdout)
    svgs = _svgs(page)
    steps = [int(g.get("data-value")) for g in svgs["ram-chart"].iter(SVG + "g") if g.get("class") == "step"]
    assert steps == [s["arena_bytes"] for s in doc["memory"]["steps"]]
    code = [int(r.get("data-value")) for r in svgs["flash-chart"].iter(SVG + "rect") if r.get("data-kind") == "code"]
    assert code == [doc["board"]["flash"]["code_bytes"]]
    assert 'id="board-verdict"' in page and "CLI_ARENA_SIZE" in page and "Board pico2 (RP2350" in page
