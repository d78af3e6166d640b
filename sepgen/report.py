"""Formatting of a :class:`sepgen.budget.Budget`: text table, JSON (docs/json-report.md), Markdown, HTML.

Formatting only: every figure is computed by :mod:`sepgen.budget`; here it is laid out.
Units: MACs per inference (batch 1); flash, scratch and RAM in bytes.
"""

from __future__ import annotations

import html
import math
from typing import Any

from .budget import DEPTHWISE_SEPARABLE, Block, Budget, LayerBudget

_KIND_TEXT = {DEPTHWISE_SEPARABLE: "depthwise-separable"}
_COLUMNS = ("layer", "op", "in -> out", "params", "MACs", "std MACs", "saving", "flash B", "scratch B")
_NUMERIC = frozenset(range(3, len(_COLUMNS)))


def _n(value: int) -> str:
    return f"{value:,}"


def _x(ratio: float) -> str:
    return "∞×" if math.isinf(ratio) else f"{ratio:.1f}×"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _kind(block: Block) -> str:
    return _KIND_TEXT.get(block.kind, "spatially separable")


def _row_saving(row: LayerBudget) -> str:
    """Per-row saving, shown only for a standalone layer whose standard differs (block rows: see block line)."""
    if row.block is not None or row.standard_macs == row.macs or row.macs == 0:
        return ""
    return _x(row.standard_macs / row.macs)


def _cells(row: LayerBudget, indent: str = "") -> list[str]:
    return [indent + row.name, row.op, f"{_shape(row.input_shape)} -> {_shape(row.output_shape)}", _n(row.params),
            _n(row.macs), _n(row.standard_macs), _row_saving(row), _n(row.flash_bytes), _n(row.scratch_bytes)]


def _total_cells(b: Budget) -> list[str]:
    t = b.totals
    saving = _x(t.mac_saving) if t.standard_macs != t.macs else ""
    return ["total", "", "", _n(t.params), _n(t.macs), _n(t.standard_macs), saving, _n(t.flash_bytes),
            _n(t.max_scratch_bytes)]


def block_line(block: Block) -> str:
    """One line summing up a separable block, e.g. ``sep1: 9,633 MACs vs 45,630 standard (4.7× fewer)``."""
    return (f"{block.label}: {_n(block.macs)} MACs vs {_n(block.standard_macs)} standard ({_x(block.mac_saving)} "
            f"fewer); {_n(block.params)} vs {_n(block.standard_params)} params ({_x(block.param_saving)} fewer); "
            f"{_kind(block)}, standard: {block.standard}")


def _header(b: Budget) -> str:
    graph = "float graph" if b.quantizer == "none" else f"int8 graph (quantizer: {b.quantizer})"
    return f"model '{b.model}' from {b.source}, {graph}; MACs per inference, bytes once quantized to int8"


def _ram_line(b: Budget) -> str:
    t = b.totals
    return (f"RAM: {_n(t.ram_bytes)} bytes (static arena, <PREFIX>_ARENA_SIZE); flash: {_n(t.flash_bytes)} bytes "
            f"of constants; MACs: {_n(t.macs)} vs {_n(t.standard_macs)} with standard convolutions; "
            f"params: {_n(t.params)} vs {_n(t.standard_params)}")


def to_text(b: Budget) -> str:
    """An aligned table: one row per layer, separable blocks introduced by a block line, then totals and RAM."""
    blocks = {blk.layers[0]: blk for blk in b.blocks}
    lines: list[tuple[str, list[str] | str]] = []  # ("row", cells) or ("line", text)
    for row in b.layers:
        if row.name in blocks:
            lines.append(("line", block_line(blocks[row.name])))
        lines.append(("row", _cells(row, "  " if row.block is not None else "")))
    table = [list(_COLUMNS)] + [cells for kind, cells in lines if kind == "row"] + [_total_cells(b)]
    widths = [max(len(r[i]) for r in table) for i in range(len(_COLUMNS))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in _NUMERIC else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [_header(b), "", fmt(list(_COLUMNS)), rule]
    out += [fmt(item) if kind == "row" else item for kind, item in lines]  # type: ignore[arg-type]
    out += [rule, fmt(_total_cells(b)), "", _ram_line(b)]
    return "\n".join(out) + "\n"


def to_json(b: Budget) -> dict[str, Any]:
    """The ``report --json`` object: {"model", "layers": [...], "totals": {...}}; schema in docs/json-report.md."""
    layers = [{"name": r.name, "op": r.op, "input_shape": list(r.input_shape), "output_shape": list(r.output_shape),
               "params": r.params, "macs": r.macs, "standard_params": r.standard_params,
               "standard_macs": r.standard_macs, "flash_bytes": r.flash_bytes, "scratch_bytes": r.scratch_bytes,
               "block": r.block} for r in b.layers]
    t = b.totals
    totals = {"params": t.params, "macs": t.macs, "standard_params": t.standard_params,
              "standard_macs": t.standard_macs, "flash_bytes": t.flash_bytes, "ram_bytes": t.ram_bytes}
    return {"model": b.model, "layers": layers, "totals": totals}


def _md(text: str) -> str:
    """Escape text for a Markdown table cell (HTML-significant characters and pipes)."""
    return html.escape(text, quote=False).replace("|", "\\|")


def to_markdown(b: Budget) -> str:
    """A Markdown report: the layer table (with a block column), a block table, and the RAM line."""
    head = ["layer", "block", "op", "input", "output", "params", "MACs", "standard MACs", "saving", "flash (B)",
            "scratch (B)"]
    align = ["---", "---", "---", "---", "---"] + ["---:"] * 6
    out = [f"# sepgen budget: {_md(b.model)}", "", _md(_header(b)), "",
           "| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for r in b.layers:
        cells = [_md(r.name), _md(r.block or ""), r.op, _shape(r.input_shape), _shape(r.output_shape), _n(r.params),
                 _n(r.macs), _n(r.standard_macs), _row_saving(r), _n(r.flash_bytes), _n(r.scratch_bytes)]
        out.append("| " + " | ".join(cells) + " |")
    t = _total_cells(b)
    out.append("| **total** | | | | | " + " | ".join(f"**{c}**" if c else "" for c in t[3:]) + " |")
    if b.blocks:
        out += ["", "## Separable blocks", "",
                "| block | kind | layers | MACs | standard MACs | MAC saving | params | standard params | "
                "param saving | standard equivalent |",
                "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for blk in b.blocks:
            out.append(f"| {_md(blk.label)} | {_kind(blk)} | {_md(' + '.join(blk.layers))} | {_n(blk.macs)} | "
                       f"{_n(blk.standard_macs)} | {_x(blk.mac_saving)} | {_n(blk.params)} | "
                       f"{_n(blk.standard_params)} | {_x(blk.param_saving)} | {blk.standard} |")
    out += ["", _md(_ram_line(b))]
    return "\n".join(out) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.block th { background: #e8f0fe; font-weight: normal; text-align: left; }
tr.member td:first-child { padding-left: 2em; }
tr.total td { font-weight: bold; border-top: 2px solid #888; }
"""


#: Marks an HTML report as sepgen's, so that ``report --html FILE`` may overwrite its own earlier report.
HTML_GENERATOR = '<meta name="generator" content="sepgen">'


def is_html_report(data: bytes) -> bool:
    """True if ``data`` is an HTML report written by :func:`to_html`."""
    return HTML_GENERATOR.encode() in data[:512]


def to_html(b: Budget) -> str:
    """A small self-contained HTML page (inline CSS, no scripts); every name is escaped."""
    e = html.escape
    blocks = {blk.layers[0]: blk for blk in b.blocks}
    head = "".join(f"<th>{e(c)}</th>" for c in _COLUMNS)
    body: list[str] = []
    for r in b.layers:
        if r.name in blocks:
            body.append(f'<tr class="block"><th colspan="{len(_COLUMNS)}">{e(block_line(blocks[r.name]))}</th></tr>')
        cells = _cells(r)
        tds = "".join(f'<td class="n">{e(c)}</td>' if i in _NUMERIC else f"<td>{e(c)}</td>"
                      for i, c in enumerate(cells))
        body.append(f'<tr class="{"member" if r.block else "layer"}">{tds}</tr>')
    total = "".join(f'<td class="n">{e(c)}</td>' if i in _NUMERIC else f"<td>{e(c)}</td>"
                    for i, c in enumerate(_total_cells(b)))
    body.append(f'<tr class="total">{total}</tr>')
    title = f"sepgen budget: {b.model}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"{HTML_GENERATOR}\n"
            f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>{e(title)}</h1>\n<p>{e(_header(b))}</p>\n"
            f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n"
            f"<p>{e(_ram_line(b))}</p>\n</body>\n</html>\n")
