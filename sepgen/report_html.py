"""The HTML report (``sepgen report --html FILE``): one self-contained page rendered from
``templates/report/report.html.j2`` (inline CSS and SVG, no script, nothing fetched).

Python computes the figures' geometry (numbers: bar lengths, offsets, in SVG user units = CSS px); the
markup lives in the templates, rendered with HTML autoescaping.  Every number shown comes from the
:class:`~sepgen.budget.Budget`, the memory plan (:mod:`sepgen.memory_report`) and, with ``--board``, the
board object (:mod:`sepgen.board_report`); each bar carries its value in a ``data-value`` attribute.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from . import __version__
from .budget import Budget
from .codegen import templates_dir
from .report import HTML_GENERATOR, block_line, columns, header, ram_line, table

BAR_AREA = 460.0  # px: the longest bar of a horizontal chart
LABEL_WIDTH = 190.0  # px: the label column of a horizontal chart
RAM_PLOT = (620.0, 220.0)  # px: width, height of the RAM chart's plot area


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "report")),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def _scale(values: list[int]) -> float:
    """px per unit so that the largest value spans :data:`BAR_AREA` (1 if all are 0)."""
    top = max(values, default=0)
    return BAR_AREA / top if top else 1.0


def comparison_chart(b: Budget, what: str) -> dict[str, Any]:
    """Bars of ``what`` (``macs`` or ``params``) per table row with any: each separable block (its two layers)
    beside the standard convolution it replaces, and each other layer (its standard = itself, except a
    standalone depthwise)."""
    groups = []
    blocks = {blk.layers[0]: blk for blk in b.blocks}
    for row in b.layers:
        if row.name in blocks:
            blk = blocks[row.name]
            own, std = (blk.macs, blk.standard_macs) if what == "macs" else (blk.params, blk.standard_params)
            groups.append({"label": blk.label, "title": f"{blk.label} = {' + '.join(blk.layers)}", "own": own,
                           "standard": std})
        elif row.block is None:
            own, std = (row.macs, row.standard_macs) if what == "macs" else (row.params, row.standard_params)
            if own or std:
                groups.append({"label": row.name, "title": f"{row.name} ({row.op})", "own": own, "standard": std})
    scale = _scale([v for g in groups for v in (g["own"], g["standard"])])
    for g in groups:
        g["own_px"], g["standard_px"] = g["own"] * scale, g["standard"] * scale
    return {"what": what, "groups": groups, "label_width": LABEL_WIDTH, "bar_area": BAR_AREA,
            "total": b.totals.macs if what == "macs" else b.totals.params,
            "standard_total": b.totals.standard_macs if what == "macs" else b.totals.standard_params}


def ram_chart(memory: dict[str, Any]) -> dict[str, Any]:
    """Stacked bars of the live arena buffers per step of the memory plan, with the arena (and the
    layer-by-layer arena) as lines."""
    width, height = RAM_PLOT
    steps = memory["steps"]
    top = max([memory["arena_bytes"], memory["layer_arena_bytes"]] + [s["arena_bytes"] for s in steps]) or 1
    per_byte = height / top
    slot = width / max(len(steps), 1)
    bars = []
    for s in steps:
        y = height
        segments = []
        for k, buf in enumerate(x for x in s["live"] if x["where"] == "arena"):
            h = buf["bytes"] * per_byte
            y -= h
            segments.append({"buffer": buf["buffer"], "kind": buf["kind"], "bytes": buf["bytes"], "y": y, "h": h,
                             "tone": k % 4})
        label = s["layers"][0] if len(s["layers"]) == 1 else f"{s['layers'][0]}..{s['layers'][-1]}"
        bars.append({"step": s["step"], "label": label, "x": s["step"] * slot + slot * 0.15, "w": slot * 0.7,
                     "bytes": s["arena_bytes"], "segments": segments, "streamed": s["streamed"]})
    return {"width": width, "height": height, "bars": bars, "arena": memory["arena_bytes"],
            "arena_y": height - memory["arena_bytes"] * per_byte, "layer_arena": memory["layer_arena_bytes"],
            "layer_arena_y": height - memory["layer_arena_bytes"] * per_byte, "schedule": memory["schedule"],
            "peak": memory["peak_bytes"]}


def flash_chart(b: Budget, board: dict[str, Any] | None) -> dict[str, Any]:
    """One stacked bar: int8 weights, int32 bias, requantization (multipliers + shifts) and, with a board,
    the code (measured or estimated, as the board object says)."""
    parts = [("weights (int8)", sum(r.weight_bytes for r in b.layers), "weights"),
             ("bias (int32)", sum(r.bias_bytes for r in b.layers), "bias"),
             ("requantization (multipliers, shifts)", sum(r.requant_bytes for r in b.layers), "requant")]
    if board is not None:
        basis = board["flash"]["code_basis"]
        parts.append((f"code ({basis} for {board['core']})", board["flash"]["code_bytes"], "code"))
    total = sum(v for _, v, _ in parts)
    x, segments = 0.0, []
    for label, value, kind in parts:
        w = (LABEL_WIDTH + BAR_AREA) * value / total if total else 0.0
        segments.append({"label": label, "bytes": value, "kind": kind, "x": x, "w": w,
                         "percent": 100 * value / total if total else 0.0})
        x += w
    return {"segments": segments, "total": total, "width": LABEL_WIDTH + BAR_AREA, "has_code": board is not None}


def to_html(b: Budget, memory: dict[str, Any] | None = None, board: dict[str, Any] | None = None) -> str:
    """The report page: summary, charts (MACs and params vs standard, RAM over the steps, flash), the layer
    table, the separable blocks, the memory plan and the board verdict."""
    from .board_report import to_text as board_text

    context = {
        "generator": jinja2.utils.markupsafe.Markup(HTML_GENERATOR), "version": __version__,
        "title": f"sepgen budget: {b.model}", "budget": b, "header": header(b), "ram_line": ram_line(b),
        "columns": columns(b), "rows": table(b), "block_lines": [block_line(blk) for blk in b.blocks],
        "mac_chart": comparison_chart(b, "macs"), "param_chart": comparison_chart(b, "params"),
        "flash_chart": flash_chart(b, board), "memory": memory, "ram_chart": ram_chart(memory) if memory else None,
        "board": board, "board_text": board_text(board) if board else "",
    }
    return _environment().get_template("report.html.j2").render(**context)
