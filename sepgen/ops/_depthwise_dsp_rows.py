"""Constants of the DSP depthwise kernel as a row kernel (``depthwise_conv2d.cortexm_dsp.c.j2`` with ``ctx.rows``).

The whole-tensor kernel makes, once per channel, the filter's tap-pair words and the starting sums of every
row segment (the folded bias, plus the constant terms of taps on padding columns; see
:mod:`sepgen.ops._depthwise_dsp`) and then runs all the channel's rows.  A row kernel runs one or a few
output rows per call, so it would make them again for every row; here they are made at generation time
instead, with the same integer arithmetic, and stored in flash as one record per output channel (``records``,
``record`` int32 each: the words, then the starts; one pointer walks them):

* ``words``: per output channel, ``kh * kw`` int32 words; word ``ky * kw + t`` holds taps (t, t + 1) of filter
  row ky as two int16 (tap t in the low half), word ``ky * kw + kw - 1`` holds (tap kw - 1, tap 0);
* ``starts``: per output channel and row segment, ``entries`` int32: the segment's bias
  ``bias[c] + input_offset * (sum of the taps on its inside filter rows)`` first, then per pixel of a run that
  starts from more than the bias (``run.body.outs[i].init``) the bias plus ``zero_point * w`` of each of its
  taps on a padding column, on every inside filter row, in the order of ``init_slots``.

Every value is a partial sum of the whole-tensor kernel, so it is within its proven ``partial_bound`` < 2^31.
"""

from __future__ import annotations

import numpy as np


def row_tables(qkernel: np.ndarray, qbias: np.ndarray, offset: int, kernel_size: tuple[int, int],
               segments: list[dict], runs: list[dict], pad_value: int) -> dict:
    """{"records": int64 (C, record), "record": kh * kw + segments * entries, "entries",
    "init_slots": per run, per pixel, its entry index in a segment's block (0: the bias itself),
    "bias_start": some pixel starts from the bias itself}."""
    kh, kw = kernel_size
    taps = qkernel.astype(np.int64).reshape(kh * kw, -1).T  # (C, kh * kw), tap ky * kw + kx
    channels = taps.shape[0]
    partner = [i - i % kw + (i % kw + 1) % kw for i in range(kh * kw)]
    words = (taps[:, partner] << 16) + (taps & 0xFFFF)  # the int32 value of the two halves (|tap| <= 127)
    init_slots, entries = [], 1
    for run in runs:
        slots = []
        for out in run["body"]["outs"]:
            slots.append(entries if out["init"] else 0)
            entries += 1 if out["init"] else 0
        init_slots.append(slots)
    bias = qbias.astype(np.int64)  # zeros for a layer without a bias
    row_sums = taps.reshape(channels, kh, kw).sum(axis=2)  # (C, kh)
    starts = np.zeros((channels, len(segments), entries), np.int64)
    for s, seg in enumerate(segments):
        value = bias + offset * row_sums[:, seg["kys"]].sum(axis=1)
        starts[:, s, 0] = value
        for run, slots in zip(runs, init_slots):
            for out, slot in zip(run["body"]["outs"], slots):
                if slot:
                    extra = sum(pad_value * taps[:, ky * kw + (t["word"] if t["weight"] == "b" else partner[t["word"]])]
                                for ky in seg["kys"] for t in out["init"])
                    starts[:, s, slot] = value + extra
    records = np.concatenate([words, starts.reshape(channels, -1)], axis=1)
    return {"records": records, "record": records.shape[1], "entries": entries, "init_slots": init_slots,
            "bias_start": any(0 in slots for slots in init_slots)}
