"""The schedule of the DSP depthwise kernel (``templates/layers/depthwise_conv2d.cortexm_dsp.c.j2``), made at
generation time: the layout of the staged rows of int16 pairs, which output pixels are computed together,
which rows skip which filter rows, and how many input rows are staged at once.

The kernel runs one output channel at a time (input channel ``channel // depth_multiplier``; depth
multiplier 2 and 3 cost what 1 costs per MAC).  Along a row, the taps of an output pixel lie on a *chain*
of input columns ``i * dilation_x + phase - pad_left`` (consecutive chain indices for consecutive taps; one
chain per phase ``(x * stride_x) % dilation_x``).  A *staging* pass writes each input row of the channel
once as int16 pairs of chain neighbours, word ``k`` of a phase = elements (2k, 2k + 1), a column outside
the image being the input zero point; then every output pixel multiplies its taps with SMLAD (two taps)
or SMLAxy (one tap, the top or bottom half), the output pixels of a *group* (up to ``GROUP``, accumulators
in registers) sharing each loaded word.  Filter row ``ky`` of a channel becomes ``kw - 1`` words of
doubled taps (:func:`weight_words`, made once per channel, on the stack), used straight by a window that
starts on the bottom half of a word (even chain index) and crossed (SMLADX) by one that starts on a top
half.  The doubled taps accumulate 2 * acc, what the requantization takes.

Padding: a column outside the image is staged as the zero point, whose term ``zero_point * w`` the
folded bias takes back; a filter row outside the image is skipped and the row *class* (which filter rows
are inside) selects a bias with only the inside rows folded:
``bias[c] + input_offset * sum(w[c][ky][:] for inside ky)``.  Output rows of one class form a segment (one
loop); groups with the same taps relative to their first word form a run (one loop).

Staging memory: a *band* of output rows stages the input rows it reads, at most ``STAGE_BYTES`` on the
stack (all rows at once when they fit, else bands of rows that overlap by the filter's height).
"""

from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ._common import LIMIT

GROUP = 5  # output pixels computed together at most (accumulators in registers; 13 usable on Cortex-M4)
STAGE_BYTES = 2048  # the staged rows of one band, on the stack (as the conv2d DSP kernel's staged patches)
LOOP_WORDS = 4  # a staged row's interior words become a loop from this many on


def _phases(out_w: int, sw: int, dw: int) -> dict[int, list[int]]:
    """Output columns per phase (x * sw) % dw, in order."""
    phases: dict[int, list[int]] = {}
    for x in range(out_w):
        phases.setdefault((x * sw) % dw, []).append(x)
    return dict(sorted(phases.items()))


def row_layout(out_w: int, sw: int, dw: int, kw: int, pl: int, in_w: int) -> dict:
    """The staged row: {"words": its length in 32-bit words, "phases": {phase: (first word, chain origin)},
    "staging": what the staging pass writes}.

    Chain element i of a phase is image column (origin + i) * dw + phase - pl.  ``staging`` items:
    {"kind": "pair", "word", "a", "b"} (a/b: image column of the bottom/top half, None = zero point),
    {"kind": "loop", "word", "count", "a", "step"} (count words from ``word``, bottom column a + j * step,
    top column one dilation further, all inside) and {"kind": "pad", "word"} (both halves the zero point:
    written once per call, not per row)."""
    phases, staging, words = {}, [], 0
    for phase, xs in _phases(out_w, sw, dw).items():
        origin = (xs[0] * sw) // dw
        n = (xs[-1] * sw) // dw - origin + kw
        count = (n + 1) // 2
        phases[phase] = (words, origin)

        def col(i: int) -> int | None:
            c = (origin + i) * dw + phase - pl
            return c if 0 <= c < in_w and i < n else None
        j = 0
        while j < count:
            a, b = col(2 * j), col(2 * j + 1)
            run = 0
            while j + run < count and col(2 * (j + run)) is not None and col(2 * (j + run) + 1) is not None:
                run += 1
            if run >= LOOP_WORDS:
                staging.append({"kind": "loop", "word": words + j, "count": run, "a": a, "step": 2 * dw})
                j += run
                continue
            kind = "pad" if a is None and b is None else "pair"
            staging.append({"kind": kind, "word": words + j, "a": a, "b": b})
            j += 1
        words += count
    return {"words": words, "phases": phases, "staging": staging}


def weight_words(kw: int) -> list[tuple[int, int]]:
    """The words of one filter row as (tap in the bottom half, tap in the top half), doubled in the kernel:
    A_j = (2j, 2j + 1) for j < kw // 2, then B_j = (2j + 2, 2j + 1) for j < (kw - 1) // 2 (SMLADX multiplies
    a data pair (2j + 1, 2j + 2) by it crossed), kw - 1 words; a 1-wide filter has one word (0, 0)."""
    if kw == 1:
        return [(0, 0)]
    return [(2 * j, 2 * j + 1) for j in range(kw // 2)] + [(2 * j + 2, 2 * j + 1) for j in range((kw - 1) // 2)]


def _body(outs: tuple, kw: int) -> dict:
    """The multiplies of one group and filter row.  ``outs``: per pixel (dx, chain index of its first tap
    relative to element 0 of the group's first word).  With m = kw // 2 and the words of
    :func:`weight_words`, a pixel starting on a bottom half (even index) multiplies pairs by A_j (SMLAD) and
    an odd kw's last tap by the bottom of B_{m-1} (SMLABB); one starting on a top half (odd index) its first
    tap by the bottom of A_0 (SMLATB), pairs by B_j crossed (SMLADX) and an even kw's last tap by the top of
    A_{m-1} (SMLABT).  Three taps take two multiplies per pixel and filter row, and two words."""
    m = kw // 2
    rendered = []
    for dx, s in outs:
        k = s // 2
        if kw == 1:
            ops = [{"kind": "smlatb" if s % 2 else "smlabb", "pair": k, "word": 0}]
        elif s % 2 == 0:
            ops = [{"kind": "smlad", "pair": k + j, "word": j} for j in range(m)]
            if kw % 2:
                ops.append({"kind": "smlabb", "pair": k + m, "word": m + m - 1})
        else:
            ops = [{"kind": "smlatb", "pair": k, "word": 0}]
            ops += [{"kind": "smladx", "pair": k + 1 + j, "word": m + j} for j in range((kw - 1) // 2)]
            if kw % 2 == 0:
                ops.append({"kind": "smlabt", "pair": k + m, "word": m - 1})
        rendered.append({"dx": dx, "ops": ops})
    return {"pairs": sorted({op["pair"] for o in rendered for op in o["ops"]}), "outs": rendered,
            "words": sorted({op["word"] for o in rendered for op in o["ops"]})}


def _runs(out_w: int, sw: int, dw: int, kw: int, layout: dict, group: int) -> list[dict]:
    runs: list[dict] = []
    for phase, xs in _phases(out_w, sw, dw).items():
        base, origin = layout["phases"][phase]
        for k in range(0, len(xs), group):
            chunk = xs[k:k + group]
            rel = [(x * sw) // dw - origin for x in chunk]
            first = rel[0] // 2
            outs = tuple((x - chunk[0], r - 2 * first) for x, r in zip(chunk, rel))
            word, x = base + first, chunk[0]
            last = runs[-1] if runs else None
            if last is not None and last["outs"] == outs and (
                    last["count"] == 1 or (x - last["x"] == last["count"] * last["dx"]
                                           and word - last["word"] == last["count"] * last["dword"])):
                if last["count"] == 1:
                    last["dx"], last["dword"] = x - last["x"], word - last["word"]
                last["count"] += 1
                continue
            runs.append({"x": x, "word": word, "count": 1, "dx": 0, "dword": 0, "outs": outs})
    return [dict(r, body=_body(r["outs"], kw)) for r in runs]


def x_runs(out_w: int, sw: int, dw: int, kw: int, layout: dict) -> list[dict]:
    """Runs of groups with the same taps: {"x", "word" (first staged word), "count", "dx", "dword" (between
    groups), "body"}; the group size (<= GROUP) that gives the fewest groups (each loads its filter words and
    the words its windows share) with at most 2 runs (code) where possible, then the most even groups, then the
    fewest runs."""
    best = None
    for group in range(GROUP, 2, -1):
        runs = _runs(out_w, sw, dw, kw, layout, group)
        smallest = min(len(r["outs"]) for r in runs)  # balanced groups: a lone pixel loads the filter words alone
        key = (len(runs) > 2, sum(r["count"] for r in runs), -smallest, len(runs))
        if best is None or key < best[0]:
            best = (key, runs)
    return best[1]


def bands(out_h: int, sh: int, dh: int, kh: int, pt: int, in_h: int, row_words: int, planes: int = 1) -> dict | None:
    """Output rows per band and staged rows: {"rows": output rows per band, "count": bands, "staged": staged
    rows per plane (the buffer holds ``planes`` planes of that height), "in_lo"/"in_hi": the input rows all
    output rows read (one band)}, or None when not even one output row's input rows fit in STAGE_BYTES."""
    capacity = STAGE_BYTES // (4 * row_words * planes)

    def staged(y0: int, y1: int) -> int:  # input rows read by output rows y0..y1 - 1
        lo = max(0, y0 * sh - pt)
        hi = min(in_h, (y1 - 1) * sh - pt + (kh - 1) * dh + 1)
        return max(hi - lo, 1)
    rows = out_h
    while rows > 1 and max(staged(y, min(y + rows, out_h)) for y in range(0, out_h, rows)) > capacity:
        rows -= 1
    height = max(staged(y, min(y + rows, out_h)) for y in range(0, out_h, rows))
    if height > capacity:
        return None
    in_lo, in_hi = max(0, -pt), min(in_h, (out_h - 1) * sh - pt + (kh - 1) * dh + 1)
    return {"rows": rows, "count": -(-out_h // rows), "staged": height, "in_lo": in_lo, "in_hi": in_hi,
            "planes": planes}


# Estimated instructions per staged element (LDRSB + PKHBT + STR per pair / LDRH + ORR + 2 SXTB16 + 2 STR per 2
# channels / 2 LDR + PKHBT + PKHTB + 4 SXTB16 + 4 STR per 4 channels, with the loop) and per channel and band
# (the filter words and biases made again) on Cortex-M4; they choose how many channels are staged together.
STAGE_COST = {1: 2.75, 2: 2.0, 4: 1.6}
BAND_COST = 60


def staging_plan(out_h: int, sh: int, dh: int, kh: int, pt: int, in_h: int, row_words: int,
                 in_c: int) -> dict | None:
    """:func:`bands` for the number of input channels staged together (4, 2 or 1 dividing in_c: one 32-bit or
    16-bit load and SXTB16 give the int16 pairs of several channels) with the lowest estimated cost per
    channel: staged rows (bands overlap) x row words x STAGE_COST + bands x BAND_COST."""
    best = None
    for planes in (1, 2, 4):
        plan = bands(out_h, sh, dh, kh, pt, in_h, row_words, planes) if in_c % planes == 0 else None
        if plan is None:
            continue
        staged = sum(min(in_h, (min(y + plan["rows"], out_h) - 1) * sh - pt + (kh - 1) * dh + 1) - max(0, y * sh - pt)
                     for y in range(0, out_h, plan["rows"]))
        cost = staged * 2 * row_words * STAGE_COST[planes] + plan["count"] * BAND_COST
        if best is None or cost < best[0]:
            best = (cost, plan)
    return None if best is None else best[1]


def row_bands(sh: int, dh: int, kh: int, in_h: int, row_words: int, in_c: int) -> dict | None:
    """The staging of the row kernel (a layer inside a streamed chain; its calls compute output rows [row_begin,
    row_end), one row per call in the chains sepgen.schedule makes): bands of one output row (so a band lies in
    one row segment), each staging the at most (kh - 1) * dh + 1 input rows it reads; the most input channels
    staged together (4, 2 or 1 dividing in_c, the cheapest per element: STAGE_COST) whose rows fit STAGE_BYTES.
    The same keys as :func:`bands` (``count``, ``in_lo``, ``in_hi``: unused by the row kernel), or None."""
    staged = min(in_h, (kh - 1) * dh + 1)
    for planes in (4, 2, 1):
        if in_c % planes == 0 and 4 * planes * staged * row_words <= STAGE_BYTES:
            return {"rows": 1, "count": 0, "staged": staged, "in_lo": 0, "in_hi": 0, "planes": planes}
    return None


MAX_SCALE_SHIFT = 7  # 127 * 2^(1+d) must stay an int16 tap


def scaled_requant(rq: dict | None, biases: np.ndarray, weight_sums: np.ndarray, zero_point: int,
                   act_min: int) -> dict | None:
    """The requantization with every channel's right shift e moved into its accumulator, or None.

    Channel c's taps and bias are scaled by 2^(1+d) with d = E - e and E = max e + 1, and the requantization is
    :func:`sepgen.fixedpoint.requantize_floor_scaled` (SMMLA + SSAT with the shift E, the same for every
    channel: no per-channel shift at run time).  Taken for the floor form only (a clamp whose lower bound is
    >= the output zero point), when the channels' shifts differ (else SSAT already shifts by the shared one),
    d <= MAX_SCALE_SHIFT and no int32 value overflows: |acc_s| <= 2^(1+d) * (|bias'| + sum|w| * 128) < 2^31
    and |round| + |acc_s| / 2 < 2^31.  ``biases``: (C, classes) folded biases, ``weight_sums``: sum|w| per
    channel.  Returns {"exponent": E, "partial_bound": the largest |acc_s|}."""
    if rq is None or rq["uniform"] is not None or act_min < zero_point:
        return None
    e = np.asarray(rq["right_shift"], dtype=np.int64)
    big = int(e.max()) + 1
    d = big - e
    if d.max() > MAX_SCALE_SHIFT or big > 31:
        return None
    partial = (np.abs(biases).max(axis=1) + weight_sums * 128) << (1 + d)
    rounds = np.abs(fp.scaled_floor_round(zero_point, e, d))
    if partial.max() >= LIMIT or (rounds + (partial >> 1)).max() >= LIMIT:
        return None
    return {"exponent": big, "partial_bound": int(partial.max())}


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
