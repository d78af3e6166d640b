"""Formatting of a :class:`sepgen.budget.Budget`: text table, JSON (docs/json-report.md), Markdown, HTML.

Formatting only: every figure is computed by :mod:`sepgen.budget`; here it is laid out.
Units: MACs per inference (batch 1); flash, scratch and RAM in bytes.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from .budget import DEPTHWISE_SEPARABLE, Block, Budget, LayerBudget

_KIND_TEXT = {DEPTHWISE_SEPARABLE: "depthwise-separable"}
_NA = "-"  # a figure that does not apply to the row


def _n(value: int) -> str:
    return f"{value:,}"


def _x(ratio: float) -> str:
    return "∞×" if math.isinf(ratio) else f"{ratio:.1f}×"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _kind(block: Block) -> str:
    return _KIND_TEXT.get(block.kind, "spatially separable")


def _share(macs: int, total: int) -> str:
    """``macs`` as a percentage of the model's MACs (``-`` for a layer without MACs)."""
    return f"{100 * macs / total:.1f}%" if macs and total else _NA


@dataclass(frozen=True)
class TableRow:
    """One row of the layer table, figures already formatted (text, Markdown and HTML show the same cells).

    ``kind``: ``layer`` (a layer outside any block), ``block`` (a separable block: the sum of its two
    layers beside the standard convolution it replaces), ``member`` (a layer of the block above it:
    its standard figures are on the block row, so they show ``-``) or ``total`` (sums over layers).
    """

    kind: str
    name: str
    op: str
    shapes: str
    params: str
    macs: str
    share: str  # of the model's MACs
    standard_macs: str
    saving: str  # standard MACs / MACs
    flash: str  # bytes
    scratch: str  # bytes
    block: str = ""  # label of the row's block (block and member rows)

    NUMERIC = ("params", "macs", "share", "standard_macs", "saving", "flash", "scratch")


#: (TableRow field, text header, Markdown/HTML header)
COLUMNS = (("name", "layer", "layer"), ("op", "op", "op"), ("shapes", "in -> out", "input -> output"),
           ("params", "params", "params"), ("macs", "MACs", "MACs"), ("share", "% MACs", "% of MACs"),
           ("standard_macs", "std MACs", "standard MACs"), ("saving", "saving", "MAC saving"),
           ("flash", "flash B", "flash (B)"), ("scratch", "scratch B", "scratch (B)"))


def columns(b: Budget) -> tuple[tuple[str, str, str], ...]:
    """The table's columns; ``scratch`` only when some layer needs scratch RAM (today none does)."""
    return COLUMNS if b.totals.max_scratch_bytes else COLUMNS[:-1]


def _layer_row(row: LayerBudget, total_macs: int) -> TableRow:
    member = row.block is not None
    if member:
        standard, saving = _NA, _NA
    else:
        standard = _n(row.standard_macs)
        saving = _x(row.standard_macs / row.macs) if row.macs and row.standard_macs != row.macs else _NA
    return TableRow("member" if member else "layer", row.name, row.op,
                    f"{_shape(row.input_shape)} -> {_shape(row.output_shape)}", _n(row.params), _n(row.macs),
                    _share(row.macs, total_macs), standard, saving, _n(row.flash_bytes), _n(row.scratch_bytes),
                    row.block or "")


def _block_row(b: Budget, block: Block) -> TableRow:
    first, second = b.layer(block.layers[0]), b.layer(block.layers[1])
    return TableRow("block", block.label, _kind(block), f"{_shape(first.input_shape)} -> {_shape(second.output_shape)}",
                    _n(block.params), _n(block.macs), _share(block.macs, b.totals.macs), _n(block.standard_macs),
                    _x(block.mac_saving), _n(first.flash_bytes + second.flash_bytes),
                    _n(max(first.scratch_bytes, second.scratch_bytes)), block.label)


def table(b: Budget) -> list[TableRow]:
    """The layer table: each separable block as a row followed by its two layers, then the totals row."""
    blocks = {blk.layers[0]: blk for blk in b.blocks}
    rows: list[TableRow] = []
    for row in b.layers:
        if row.name in blocks:
            rows.append(_block_row(b, blocks[row.name]))
        rows.append(_layer_row(row, b.totals.macs))
    t = b.totals
    rows.append(TableRow("total", "total", "", "", _n(t.params), _n(t.macs), "100.0%" if t.macs else _NA,
                         _n(t.standard_macs), _x(t.mac_saving) if t.standard_macs != t.macs else _NA,
                         _n(t.flash_bytes), _n(t.max_scratch_bytes)))
    return rows


def block_line(block: Block) -> str:
    """One line naming a separable block's layers and the standard convolution it replaces, e.g.
    ``sep1 = dw + pw (depthwise-separable) replaces conv2d 3x3, 3 -> 10 channels: 4.7× fewer MACs
    (9,633 vs 45,630), 4.0× fewer params (67 vs 280)``."""
    return (f"{block.label} = {' + '.join(block.layers)} ({_kind(block)}) replaces {block.standard}: "
            f"{_x(block.mac_saving)} fewer MACs ({_n(block.macs)} vs {_n(block.standard_macs)}), "
            f"{_x(block.param_saving)} fewer params ({_n(block.params)} vs {_n(block.standard_params)})")


def header(b: Budget) -> str:
    """The report's first line: model, source file, graph kind (quantizer) and units."""
    graph = "float graph" if b.quantizer == "none" else f"int8 graph (quantizer: {b.quantizer})"
    return f"model '{b.model}' from {b.source}, {graph}; MACs per inference, bytes once quantized to int8"


def ram_line(b: Budget) -> str:
    """RAM (with the real arena macro name), flash of constants, MACs and params beside standard convolutions."""
    t = b.totals
    return (f"RAM: {_n(t.ram_bytes)} bytes (static arena, {b.arena_macro}); flash: {_n(t.flash_bytes)} bytes "
            f"of constants; MACs: {_n(t.macs)} vs {_n(t.standard_macs)} with standard convolutions; "
            f"params: {_n(t.params)} vs {_n(t.standard_params)}")


def to_text(b: Budget) -> str:
    """An aligned table: a row per layer, each separable block as a row above its two indented layers, the
    totals; then one line per block (its standard equivalent) and the RAM line."""
    cols = columns(b)
    rows = table(b)
    cells = [[h for _, h, _ in cols]] + [
        [("  " if r.kind == "member" else "") + getattr(r, f) if f == "name" else getattr(r, f) for f, _, _ in cols]
        for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    numeric = {i for i, (f, _, _) in enumerate(cols) if f in TableRow.NUMERIC}

    def fmt(line: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [header(b), "", fmt(cells[0]), rule] + [fmt(c) for c in cells[1:-1]] + [rule, fmt(cells[-1])]
    if b.blocks:
        out += ["", "Separable blocks:"]
        out += ["  " + block_line(blk) for blk in b.blocks]
    out += ["", ram_line(b)]
    return "\n".join(out) + "\n"


def to_json(b: Budget) -> dict[str, Any]:
    """The ``report --json`` object: {"model", "prefix", "arena_macro", "layers": [...], "totals": {...}}; schema
    in docs/json-report.md (``sepgen report`` adds ``memory`` and, with ``--board``, ``board``)."""
    layers = [{"name": r.name, "op": r.op, "input_shape": list(r.input_shape), "output_shape": list(r.output_shape),
               "params": r.params, "macs": r.macs, "standard_params": r.standard_params,
               "standard_macs": r.standard_macs, "flash_bytes": r.flash_bytes, "scratch_bytes": r.scratch_bytes,
               "block": r.block} for r in b.layers]
    t = b.totals
    totals = {"params": t.params, "macs": t.macs, "standard_params": t.standard_params,
              "standard_macs": t.standard_macs, "flash_bytes": t.flash_bytes, "ram_bytes": t.ram_bytes}
    return {"model": b.model, "prefix": b.prefix, "arena_macro": b.arena_macro, "layers": layers, "totals": totals}


def _md(text: str) -> str:
    """Escape text for a Markdown table cell (HTML-significant characters and pipes)."""
    return html.escape(text, quote=False).replace("|", "\\|")


def to_markdown(b: Budget) -> str:
    """A Markdown report: the layer table (block rows as in the text table), a block table, and the RAM line."""
    cols = columns(b)
    numeric = [f in TableRow.NUMERIC for f, _, _ in cols]
    out = [f"# sepgen budget: {_md(b.model)}", "", _md(header(b)), "",
           "| " + " | ".join(h for _, _, h in cols) + " |",
           "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    for r in table(b):
        cells = [_md(getattr(r, f)) for f, _, _ in cols]
        if r.kind == "member":
            cells[0] = "&nbsp;&nbsp;" + cells[0]
        elif r.kind in ("block", "total"):
            cells = [f"**{c}**" if c else "" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    if b.blocks:
        out += ["", "## Separable blocks", "",
                "| block | kind | layers | MACs | standard MACs | MAC saving | params | standard params | "
                "param saving | standard equivalent |",
                "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for blk in b.blocks:
            out.append(f"| {_md(blk.label)} | {_kind(blk)} | {_md(' + '.join(blk.layers))} | {_n(blk.macs)} | "
                       f"{_n(blk.standard_macs)} | {_x(blk.mac_saving)} | {_n(blk.params)} | "
                       f"{_n(blk.standard_params)} | {_x(blk.param_saving)} | {blk.standard} |")
    out += ["", _md(ram_line(b))]
    return "\n".join(out) + "\n"


#: Marks an HTML report as sepgen's, so that ``report --html FILE`` may overwrite its own earlier report.
HTML_GENERATOR = '<meta name="generator" content="sepgen">'


def is_html_report(data: bytes) -> bool:
    """True if ``data`` is an HTML report written by :func:`to_html`."""
    return HTML_GENERATOR.encode() in data[:512]


def to_html(b: Budget, memory: dict[str, Any] | None = None, board: dict[str, Any] | None = None) -> str:
    """The self-contained HTML page (:mod:`sepgen.report_html`: a Jinja template, inline SVG charts)."""
    from .report_html import to_html as render

    return render(b, memory, board)
