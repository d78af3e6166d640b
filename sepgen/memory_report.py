"""The memory plan of a schedule (:mod:`sepgen.schedule`) for ``sepgen report``: per step (a layer, or a
chain of layers streamed row by row), which buffers are live and their bytes; the peak and where it
occurs; the whole-tensor (layer-by-layer) arena beside it.  Text and the ``memory`` object of the JSON
report (docs/json-report.md).  Shapes only: a float graph and its int8 twin have the same plan.
"""

from __future__ import annotations

from typing import Any

from .budget import arena_macro
from .ir import Graph
from .schedule import Schedule, schedule as make_schedule

def memory_plan(graph: Graph, schedule: str = "auto", reuse_input: bool = False) -> dict[str, Any]:
    """The ``memory`` object of ``report --json`` for ``schedule`` (``layer``, ``stream`` or ``auto``)."""
    s = make_schedule(graph, schedule, reuse_input)
    return plan_json(graph, s)


def _rows(s: Schedule, graph: Graph, stage: int) -> dict[int, int]:
    st = s.streams.get(stage)
    return {} if st is None else dict(zip(st.layers, st.rings))


def _busiest(s: Schedule, stage: int) -> tuple[int, dict[str, tuple[int, int]]]:
    """A stage placed row by row: (its busiest moment, {buffer: (aligned bytes, blocks) live then})."""
    blocks, moment = s.stage_blocks[stage]
    moment = max(moment, 0)  # moment -1 (before the first row step) has no more live bytes than moment 0
    live: dict[str, tuple[int, int]] = {}
    for b in blocks:
        if b.start <= moment <= b.end:
            size, count = live.get(b.owner, (0, 0))
            live[b.owner] = (size + (b.size + 3) // 4 * 4, count + 1)
    return moment, live


def plan_json(graph: Graph, s: Schedule) -> dict[str, Any]:
    peak, where = s.peak()
    steps = []
    for number, layers in enumerate(s.stages):
        st = s.streams.get(number)
        rings = {graph.layers[i].output: r for i, r in _rows(s, graph, number).items()}
        live = [{"buffer": b.name, "kind": b.kind, "bytes": b.size,
                 "where": "input" if b.name in s.in_input else "arena", "offset": s.offsets[b.name],
                 **({"rows": rings[b.name]} if b.name in rings else {})} for b in s.live(number)]
        step = {"step": number, "layers": [graph.layers[i].name for i in layers], "streamed": st is not None,
                "row_steps": st.steps if st else 0}
        if number in s.stage_blocks:  # rows placed one by one: what is live at the busiest moment
            moment, at_peak = _busiest(s, number)
            for x in live:
                x["bytes"], rows = at_peak.get(x["buffer"], (0, 0))
                if x["buffer"] in s.row_offsets:
                    x["rows"], x["placement"] = rows, "rows"
            live = [x for x in live if x["bytes"] or x["where"] == "input"]
            step["busiest"] = {"row_step": moment // len(layers), "layer": graph.layers[layers[moment % len(layers)]].name}
        steps.append({**step, "live": live, "arena_bytes": s.stage_bytes[number]})
    return {"schedule": s.mode, "reuse_input": s.reuse_input, "arena_bytes": s.arena_size,
            "layer_arena_bytes": s.layer_arena_size, "peak_bytes": peak, "peak_step": where,
            "peak_layers": [graph.layers[i].name for i in s.stages[where]] if s.stages else [],
            "extra_macs": s.extra_macs,
            "streamed_chains": [[graph.layers[i].name for i in st.layers] for st in s.streams.values()],
            "steps": steps}


def _n(v: int) -> str:
    return f"{v:,}"


def _label(layers: list[str]) -> str:
    return layers[0] if len(layers) == 1 else f"{layers[0]}..{layers[-1]}"


def to_text(m: dict[str, Any], prefix: str = "model") -> str:
    """The memory plan as text: a summary, then one line per step with its live buffers.

    ``prefix`` names the header's arena macro (``<PREFIX>_ARENA_SIZE``)."""
    chains = len(m["streamed_chains"])
    out = [f"Memory plan (--schedule {m['schedule']}{', --reuse-input' if m['reuse_input'] else ''}): "
           f"arena {_n(m['arena_bytes'])} bytes ({arena_macro(prefix)}) vs {_n(m['layer_arena_bytes'])} layer by "
           f"layer (whole tensors); {chains} streamed chain{'s' if chains != 1 else ''}, "
           f"{_n(m['extra_macs'])} extra MACs (no recompute)",
           f"peak: {_n(m['peak_bytes'])} live arena bytes at step {m['peak_step']} ({_label(m['peak_layers'])})"]
    if m["reuse_input"]:
        out.append("buffers marked [input] live in the caller's input buffer, which invoke() overwrites")
    if any("busiest" in step for step in m["steps"]):
        out.append("rows placed one by one: each row of a tensor inside a streamed chain takes arena bytes only from "
                   "the row step that writes it to the last that reads it (rows of whole tensors not yet written or "
                   "read for the last time are free too); such a step shows what is live at its busiest row step")
    rows = []
    for step in m["steps"]:
        what = _label(step["layers"]) + (f" (streamed, {step['row_steps']} row steps)" if step["streamed"] else "")
        if "busiest" in step:
            what = what[:-1] + f"; busiest: row step {step['busiest']['row_step']}, {step['busiest']['layer']})"
        buffers = ", ".join(
            f"{b['buffer']} {_n(b['bytes'])}" + (f" ({b['rows']} row{'s' if b['rows'] != 1 else ''})" if "rows" in b else "")
            + (" [sums]" if b["kind"] == "sum" else "") + (" [input]" if b["where"] == "input" else "")
            for b in step["live"])
        rows.append((str(step["step"]), what, _n(step["arena_bytes"]), buffers or "-"))
    head = ("step", "layers", "arena B", "live buffers (bytes)")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
    fmt = lambda r: f"{r[0].rjust(widths[0])}  {r[1].ljust(widths[1])}  {r[2].rjust(widths[2])}  {r[3]}"  # noqa: E731
    out += ["", fmt(head)] + [fmt(r) for r in rows]
    return "\n".join(out) + "\n"
