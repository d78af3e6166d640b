"""The schedule of the DSP depthwise kernel (``templates/layers/depthwise_conv2d.cortexm_dsp.c.j2``), made at
generation time: which taps share a 32-bit word of two int16 (one SMLAD for two taps), which output pixels
are computed together, which rows skip which filter rows.

The kernel runs one output channel at a time (input channel ``channel // depth_multiplier``; depth
multiplier 2 and 3 cost what 1 costs per MAC).  Along a row, the taps of an output pixel lie on a *chain*
of input columns ``i * dilation_x + phase`` (consecutive chain indices for consecutive taps); the output
pixels of one phase are taken in *groups* of up to ``GROUP`` pixels whose windows overlap on the chain.
Each group loads every input byte its windows read once per filter row (LDRSB), packs chain neighbours
(2k, 2k+1) into int16 pairs (PKHBT) and every pixel multiplies its taps with SMLAD (a pair of taps) or
SMLAxy (one tap, the top or bottom half).  Filter row ``ky`` of a channel becomes ``kw`` words (made from
the int8 filter once per channel, on the stack):
word ``t < kw - 1`` holds taps (t, t + 1), word ``kw - 1`` holds (tap kw - 1, tap 0), so a window that
starts on the top half of a pair (odd chain index) uses the pairs (1, 2), (3, 4), ... and tap 0 from the
top of the last word.

Padding: a tap on a column outside the image reads the input zero point, a constant: its term
``zero_point * w`` (which the folded bias takes back) is added once per channel and row segment to the
pixel's starting sum, not per row; a filter row outside the image is skipped and the
row *class* (which filter rows are inside) selects a bias with only the inside rows folded:
``bias[c] + input_offset * sum(w[c][ky][:] for inside ky)``.  Output rows of one class form a segment
(one loop); groups whose windows read the same pattern of inside/outside columns at the same relative
offsets form a run (one loop), so the code is one body per (row class, column pattern).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROUP = 5  # output pixels computed together (accumulators in registers; 13 usable on Cortex-M4)


@dataclass(frozen=True)
class Group:
    """Output pixels of one phase computed together; chain indices relative to the group's first element."""

    outs: tuple  # per pixel: (dx = x - first x, relative chain index of its first tap)
    elems: tuple  # per relative chain index: byte offset (image column - base column) * C_in, or None: padding
    base_col: int  # image column of the offset origin (>= 0)
    x: int  # first output column


def _phase_outputs(out_w: int, sw: int, dw: int) -> dict[int, list[int]]:
    phases: dict[int, list[int]] = {}
    for x in range(out_w):
        phases.setdefault((x * sw) % dw, []).append(x)
    return phases


def _group(xs: list[int], sw: int, dw: int, kw: int, pl: int, in_w: int, in_c: int) -> Group:
    starts = [(x * sw) // dw for x in xs]
    phase = (xs[0] * sw) % dw
    lo = starts[0]
    n = starts[-1] - lo + kw
    cols = [(lo + i) * dw + phase - pl for i in range(n)]
    inside = [c for c in cols if 0 <= c < in_w]
    base = min(inside) if inside else 0
    elems = tuple((c - base) * in_c if 0 <= c < in_w else None for c in cols)
    return Group(tuple((x - xs[0], s - lo) for x, s in zip(xs, starts)), elems, base, xs[0])


def _signature(g: Group) -> tuple:
    return g.outs, g.elems


def x_runs(out_w: int, sw: int, dw: int, kw: int, pl: int, in_w: int, in_c: int, group: int = GROUP) -> list[dict]:
    """Runs of identical groups: {"x", "count", "dx", "dcol" (image columns between groups), "group"}."""
    runs: list[dict] = []
    for _, xs in sorted(_phase_outputs(out_w, sw, dw).items()):
        groups = [_group(xs[k:k + group], sw, dw, kw, pl, in_w, in_c) for k in range(0, len(xs), group)]
        for g in groups:
            last = runs[-1] if runs else None
            if (last is not None and _signature(last["group"]) == _signature(g)
                    and (last["count"] == 1 or (g.x - last["x"] - (last["count"] - 1) * last["dx"] == last["dx"]
                                                and g.base_col - last["group"].base_col
                                                - (last["count"] - 1) * last["dcol"] == last["dcol"]))):
                if last["count"] == 1:
                    last["dx"], last["dcol"] = g.x - last["x"], g.base_col - last["group"].base_col
                last["count"] += 1
                continue
            runs.append({"x": g.x, "count": 1, "dx": 0, "dcol": 0, "group": g})
    return [dict(r, body=_body(r["group"], kw)) for r in runs]


def _body(g: Group, kw: int) -> dict:
    """The multiplies of one group and filter row: which pairs to pack, then per pixel its operations.

    A pixel's taps on the chain, from its first: a tap on the top half of a pair (odd index) alone, then
    pairs (SMLAD with word t = taps t, t + 1), then a last tap alone.  One tap is (source, data half, word,
    weight half): SMLA<data><weight>; a source is pair k ("p", k) or element i ("e", i), an element being
    its own bottom half.  Taps on padding columns read the zero point, a constant: they move to "init"
    (word, weight half), added to the pixel's bias once per channel and row segment, not per row."""
    pads = {i for i, off in enumerate(g.elems) if off is None}
    plans = []
    for dx, s in g.outs:
        taps, pos, t = [], s, 0  # (kind, chain index, word, weight half)
        if pos % 2:
            taps.append(("one", pos, kw - 1, "t"))
            pos, t = pos + 1, t + 1
        while t + 1 < kw:
            taps.append(("two", pos, t, ""))
            pos, t = pos + 2, t + 2
        if t < kw:
            taps.append(("one", pos, kw - 1, "b"))
        ops, init = [], []
        for kind, i, word, half in taps:
            if kind == "two" and (i in pads or i + 1 in pads):  # split: the inside half alone
                for j, h in ((i, "b"), (i + 1, "t")):
                    (init if j in pads else ops).append(("one", j, word, h))
            elif kind == "one" and i in pads:
                init.append((kind, i, word, half))
            else:
                ops.append((kind, i, word, half))
        plans.append((dx, ops, init))
    uses: dict[int, set] = {}
    for _, ops, _ in plans:
        for kind, i, _, _ in ops:
            uses.setdefault(i // 2, set()).add("pair" if kind == "two" else "bt"[i % 2])
    packed = sorted(k for k, u in uses.items() if "pair" in u or u == {"b", "t"})
    outs = []
    for dx, ops, init in plans:
        rendered = []
        for kind, i, word, half in ops:
            if kind == "two":
                rendered.append({"kind": "smlad", "src": ("p", i // 2), "word": word, "data": "", "weight": ""})
            elif i // 2 in packed:
                rendered.append({"kind": "single", "src": ("p", i // 2), "word": word, "data": "bt"[i % 2],
                                 "weight": half})
            else:
                rendered.append({"kind": "single", "src": ("e", i), "word": word, "data": "b", "weight": half})
        outs.append({"dx": dx, "ops": rendered, "init": [{"word": w, "weight": h} for _, _, w, h in init]})
    loaded = sorted({i for k in packed for i in (2 * k, 2 * k + 1)}
                    | {op["src"][1] for o in outs for op in o["ops"] if op["src"][0] == "e"})
    return {"elems": [{"i": i, "off": g.elems[i]} for i in loaded],
            "pairs": [{"k": k} for k in packed],
            "outs": outs, "words": sorted({op["word"] for o in outs for op in o["ops"]}),
            "has_init": any(o["init"] for o in outs)}


def y_segments(out_h: int, sh: int, dh: int, kh: int, pt: int, in_h: int) -> tuple[list[dict], list[tuple]]:
    """Runs of output rows with the same inside filter rows: ([{"begin", "end", "cls", "kys", "row0"}], classes).

    ``row0`` is the input row of the first inside filter row for out_y = 0 (the segment's rows add
    out_y * stride); ``kys`` the inside filter rows.  ``classes[cls]`` is the tuple of inside filter rows."""
    classes: list[tuple] = []
    segments: list[dict] = []
    for y in range(out_h):
        kys = tuple(ky for ky in range(kh) if 0 <= y * sh - pt + ky * dh < in_h)
        if kys not in classes:
            classes.append(kys)
        cls = classes.index(kys)
        if segments and segments[-1]["cls"] == cls:
            segments[-1]["end"] = y + 1
            continue
        segments.append({"begin": y, "end": y + 1, "cls": cls, "kys": list(kys),
                         "row0": (kys[0] * dh - pt) if kys else 0})
    return segments, classes


def class_biases(qbias: np.ndarray, qkernel: np.ndarray, offset: int, classes: list[tuple]) -> np.ndarray:
    """(C_out, classes) int64: bias[c] + input_offset * (sum of channel c's taps on the class's inside rows),
    the bias a row segment of that class starts from (the kernel computes it per channel; here for the bound)."""
    w = qkernel.astype(np.int64).reshape(qkernel.shape[1], qkernel.shape[2], -1)  # (kh, kw, C)
    rows = w.sum(axis=1)  # (kh, C)
    cols = [qbias.astype(np.int64) + offset * rows[list(kys)].sum(axis=0) if kys else qbias.astype(np.int64)
            for kys in classes]
    return np.stack(cols, axis=1)
