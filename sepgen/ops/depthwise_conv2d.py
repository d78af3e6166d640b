"""depthwise_conv2d: one kh x kw filter per input channel and multiplier (TFLite DEPTHWISE_CONV_2D).

Float kernel (kh, kw, in_channels, depth_multiplier) (Keras); int8 kernel (1, kh, kw, C * dm) (TFLite).
Output channel ``in_channel * depth_multiplier + m``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from . import _depthwise_dsp as dsp
from ._common import (LIMIT, SpatialLayer, clamp_range, fold_input_offset, host_floor, host_requant, input_offset,
                      right_shift_requant, windows)


#: Most channels the host kernel keeps int32 sums of on the stack (4 bytes each).
HOST_MAX_CHANNELS = 1024


@dataclass(frozen=True, eq=False)
class DepthwiseConv2D(SpatialLayer):
    """Depthwise convolution; kernel (kh, kw, in_channels, depth_multiplier)."""

    op = "depthwise_conv2d"

    @staticmethod
    def output_channels(kernel_shape: tuple[int, ...]) -> int:
        return int(kernel_shape[2] * kernel_shape[3])  # in_channels * depth_multiplier

    @property
    def depth_multiplier(self) -> int:
        return int(self.kernel.shape[3])

    def output_channels_first(self, kernel):
        kh, kw, cin, dm = kernel.shape
        return kernel.reshape(kh, kw, cin * dm).transpose(2, 0, 1)  # (C_out, kh, kw)

    def tflite_kernel(self, rows):
        return rows.transpose(1, 2, 0)[None]  # (1, kh, kw, C_out)

    def channel_weight_sums(self):
        w = np.abs(self.qkernel.astype(np.int64))
        return w.reshape(-1, w.shape[-1]).sum(axis=0)

    def keras_int_kernel(self):
        kh, kw, cin, dm = self.kernel.shape
        return self.qkernel.astype(np.int64).reshape(kh, kw, cin, dm)

    def convolve(self, x, kernel):
        win = windows(x, self.kernel_size, self.strides, self.dilation, self.pads(), self.output_shape[:2], 0)
        out = np.einsum("nyxcij,ijcm->nyxcm", win, kernel)  # channel = c * dm + m
        return out.reshape(out.shape[:3] + (-1,))

    # ----------------------------------------------------------- kernel variants
    kernels = {"cortexm_dsp": "layers/depthwise_conv2d.cortexm_dsp.c.j2", "mve": "layers/depthwise_conv2d.mve.c.j2",
               "host": "layers/depthwise_conv2d.host.c.j2",
               "micropython": "micropython/layers/depthwise_conv2d.py.j2"}
    #: inside a streamed chain the same host, DSP and Helium templates render a row kernel (ctx.rows)
    row_kernels = {"host": "layers/depthwise_conv2d.host.c.j2",
                   "cortexm_dsp": "layers/depthwise_conv2d.cortexm_dsp.c.j2", "mve": "layers/depthwise_conv2d.mve.c.j2"}

    def instance_kernels(self, graph):
        """The DSP variant covers every depth multiplier, kernel, stride, dilation and padding, the Helium variant
        depth multiplier 1; layers whose folded biases would not keep every partial sum within int32 use the
        portable kernel."""
        templates = super().instance_kernels(graph)
        if self.dsp_schedule(graph) is None:
            templates = {k: v for k, v in templates.items() if k != "cortexm_dsp"}
        if self.depthwise_folded(graph) is None:
            templates = {k: v for k, v in templates.items() if k != "mve"}
        if self.host_plan(graph) is None:
            templates = {k: v for k, v in templates.items() if k != "host"}
        return templates

    def host_plan(self, graph) -> dict | None:
        """The host kernel's constants (``layers/depthwise_conv2d.host.c.j2``): depth multiplier 1 with the input
        offset folded into the bias (:meth:`depthwise_folded`) and at most HOST_MAX_CHANNELS channels (an int32
        sum per channel on the stack); else None (then the portable kernel runs).  ``unroll_taps``: windows of at
        most this many taps are summed in one channel loop, larger ones tap by tap; ``tap_offsets``: each tap's
        offset in bytes from the window's top-left input pixel (row-major taps); ``pair_taps``: no weight is -128, so
        |w * x| <= 127 * 128 and two taps' products sum within int16 (the kernel adds them in pairs as int16)."""
        folded = self.depthwise_folded(graph)
        if folded is None or self.out_channels > HOST_MAX_CHANNELS:
            return None
        (kh, kw), (dh, dw), (_, in_w, in_c) = self.kernel_size, self.dilation, self.input_shape
        return {**folded, "unroll_taps": 25, "pair_taps": bool(self.qkernel.min() > -128),
                "tap_offsets": [(ky * dh * in_w + kx * dw) * in_c for ky in range(kh) for kx in range(kw)],
                "requant": host_requant(self.requant, self.accumulator_bound(graph), *host_floor(graph, self))}

    def dsp_schedule(self, graph) -> dict | None:
        """The DSP kernel's generation-time schedule (:mod:`sepgen.ops._depthwise_dsp`), or None.

        Filter rows outside the image are skipped and each row class gets the bias
        bias[c] + input_offset * sum of channel c's taps on its inside rows; a column outside the image is
        staged as the input zero point (x + input_offset = 0), so acc equals TFLite's sum over the taps inside
        the image.  The kernel accumulates 2 * acc (doubled taps): every partial sum is within
        2 * (|bias'| + sum|w| * 128) (checked here, else None), and the staged rows of a band must fit
        ``STAGE_BYTES`` (else None).
        """
        offset = input_offset(graph, self)
        (kh, kw), (sh, sw), (dh, dw), (pt, pl) = self.kernel_size, self.strides, self.dilation, self.pads()
        (in_h, in_w, _), (out_h, out_w, _) = self.input_shape, self.output_shape
        segments, classes = dsp.y_segments(out_h, sh, dh, kh, pt, in_h)
        biases = dsp.class_biases(self.qbias, self.qkernel, offset, classes)  # (C, classes)
        w = np.abs(self.qkernel.astype(np.int64)).reshape(-1, self.out_channels).sum(axis=0)
        partial = 2 * int((np.abs(biases) + w[:, None] * 128).max())
        layout = dsp.row_layout(out_w, sw, dw, kw, pl, in_w)
        bands = dsp.staging_plan(out_h, sh, dh, kh, pt, in_h, layout["words"], self.input_shape[2])
        if partial >= LIMIT or bands is None:
            return None
        runs = dsp.x_runs(out_w, sw, dw, kw, layout)
        multiplies = sorted({op["kind"] for r in runs for o in r["body"]["outs"] for op in o["ops"]})
        return {"multiplies": multiplies, "filter": self.qkernel.reshape(kh * kw, -1).T, "segments": segments,
                "row_sums": sorted({ky for seg in segments for ky in seg["kys"]}), "runs": runs,
                "layout": layout, "bands": bands, "weight_words": dsp.weight_words(kw), "partial_bound": partial,
                "biases": biases,
                "pad_value": -offset}

    def depthwise_folded(self, graph) -> dict | None:
        """Depth multiplier 1 with the input offset folded into the bias, or None.

        bias'[c] = bias[c] + input_offset * sum over all taps of w[c]; a tap outside the image then reads
        the input zero point (x + input_offset = 0), so acc = bias'[c] + sum_taps w * x~ equals TFLite's sum
        over the taps inside the image.  Every partial sum is within |bias'[c]| + sum|w[c]| * 128.
        Also gives the output rows/columns whose windows lie inside the image (the padding-free interior).
        """
        if self.depth_multiplier != 1:
            return None
        fold = fold_input_offset(self.qbias, self.qkernel.reshape(-1, self.out_channels).T, input_offset(graph, self))
        if fold is None:
            return None
        (kh, kw), (sh, sw), (dh, dw), (pt, pl) = self.kernel_size, self.strides, self.dilation, self.pads()
        (in_h, in_w, _), (out_h, out_w, _) = self.input_shape, self.output_shape

        def inside(pad, stride, extent, size, outs):
            lo = -(-pad // stride)
            hi = (size - 1 + pad - extent) // stride
            return max(lo, 0), min(hi, outs - 1)

        y_lo, y_hi = inside(pt, sh, (kh - 1) * dh, in_h, out_h)
        x_lo, x_hi = inside(pl, sw, (kw - 1) * dw, in_w, out_w)
        zp = -input_offset(graph, self)
        return {**fold, "pad_value": zp,
                "pad_word": int(np.array([zp & 0xFF] * 4, dtype=np.uint8).view("<i4")[0]),
                "interior": (y_lo, y_hi, x_lo, x_hi),
                "has_interior": y_lo <= y_hi and x_lo <= x_hi,
                "has_border": not (y_lo == 0 and y_hi == out_h - 1 and x_lo == 0 and x_hi == out_w - 1)}

    def kernel_context(self, graph, variant):
        if variant == "host":
            return self.host_plan(graph)
        if variant == "mve":
            folded = self.depthwise_folded(graph)
            return {**folded, **self.mve_columns(), **self.mve_streams(folded["folded_bias"]),
                    "left_shift": bool(np.max(self.requant.shift) > 0)}
        if variant != "cortexm_dsp":
            return {}
        schedule = self.dsp_schedule(graph)
        rq = right_shift_requant(self.requant, self.accumulator_bound(graph))
        act_min, _ = clamp_range(graph, self)
        scaled = dsp.scaled_requant(rq, schedule["biases"], self.channel_weight_sums(),
                                    graph.tensors[self.output].quant.zero_point, act_min)
        return {**schedule, "requant": rq, "scaled": scaled,
                "output_zero_point": graph.tensors[self.output].quant.zero_point}

    def row_kernel_context(self, graph, variant):
        """The DSP row kernel stages the input rows of one output row per band (:func:`_depthwise_dsp.row_bands`).

        ``row_segment``: when some output row has every filter row inside the image (its row class, whose folded
        bias the partial-sum bound covers), one code path for every row: a filter row outside the image reads a
        staged row of the input zero point, so with that class's bias the sum equals the row's own class's;
        else None (one code path per row segment).  ``always_inside``: the filter rows inside for every row."""
        context = self.kernel_context(graph, variant)
        if variant == "cortexm_dsp":
            (kh, _), (sh, _), (dh, _), (pt, _) = self.kernel_size, self.strides, self.dilation, self.pads()
            context["bands"] = dsp.row_bands(sh, dh, kh, self.input_shape[0], context["layout"]["words"],
                                             self.input_shape[2])
            segments = context["segments"]
            full = len(segments) > 1 and any(seg["kys"] == list(range(kh)) for seg in segments)
            context["row_segment"] = ({"begin": 0, "end": self.output_shape[0], "kys": list(range(kh)), "row0": -pt}
                                      if full else None)
            context["always_inside"] = [ky for ky in range(kh) if all(ky in seg["kys"] for seg in segments)]
            context["row_bias"] = self.row_bias(context) if full else None
            context["row_taps"] = self.row_taps(context) if full else None
        return context

    def row_taps(self, context: dict) -> dict:
        """The row kernel's per-channel constants in flash, so that a call makes none of them (it is called once
        per output row: made per call, they cost DS-CNN's 5-pixel rows ~45 instructions per channel on M4).

        ``words``: (C, kh * NW) int32, filter row ky's NW words of two taps as int16 (bottom, top:
        :func:`_depthwise_dsp.weight_words`), each tap times the channel's scale: 2, or 2^(1+d) with the right
        shift moved in (d <= MAX_SCALE_SHIFT keeps 128 * 2^(1+d) within int16); the words the whole-tensor kernel
        makes on the stack.  ``round``: (C,) the scaled requantization's third operand
        (:func:`sepgen.fixedpoint.scaled_floor_round`), or None (not scaled)."""
        kh, kw = self.kernel_size
        taps = np.asarray(context["filter"], dtype=np.int64).reshape(-1, kh, kw)  # (C, kh, kw)
        scaled, round_ = context["scaled"], None
        if scaled is None:
            scale = np.full(len(taps), 2, dtype=np.int64)
        else:
            e = np.asarray(context["requant"]["right_shift"], dtype=np.int64)
            d = scaled["exponent"] - e
            scale = np.left_shift(np.int64(2), d)
            round_ = fp.scaled_floor_round(context["output_zero_point"], e, d)
        pairs = np.asarray(context["weight_words"])
        lo = taps[:, :, pairs[:, 0]] * scale[:, None, None]
        hi = taps[:, :, pairs[:, 1]] * scale[:, None, None]
        words = (lo & 0xFFFF) | ((hi & 0xFFFF) << 16)
        return {"words": words.astype(np.uint32).view(np.int32).reshape(len(taps), -1), "round": round_}

    def row_bias(self, context: dict) -> np.ndarray:
        """(C,) int64: the full row class's folded bias bias[c] + input_offset * (sum of all channel c's taps),
        times the channel's tap scale (2, or 2^(1 + E - e_c) with the right shift moved in): the start of every
        accumulator of the row kernel with one code path, so a call makes no row sums.  Within int32: the
        partial-sum bound (:func:`_depthwise_dsp.scaled_requant` or :meth:`dsp_schedule`) covers it."""
        full = next(seg["cls"] for seg in context["segments"] if seg["kys"] == list(range(self.kernel_size[0])))
        folded = np.asarray(context["biases"], dtype=np.int64)[:, full]
        if context["scaled"] is None:
            return folded * 2
        shifts = np.asarray(context["requant"]["right_shift"], dtype=np.int64)
        return folded << (1 + context["scaled"]["exponent"] - shifts)

    def stack_bytes(self, graph, variant, rows=False):
        """The DSP kernel's staged rows and one channel's tap words (a row kernel: the rows of one output row, and
        no tap words when they are in flash); the Helium kernel's row of padding (the same as a row kernel)."""
        if variant == "cortexm_dsp":
            s = self.row_kernel_context(graph, variant) if rows else self.dsp_schedule(graph)
            taps = 0 if s.get("row_taps") is not None else self.kernel_size[0] * len(s["weight_words"])
            return 4 * (s["bands"]["planes"] * s["bands"]["staged"] * s["layout"]["words"] + taps)
        if variant == "mve":
            return self.mve_columns()["pad_columns"] * self.input_shape[2]
        return 0

    def mve_streams(self, folded_bias: np.ndarray) -> dict:
        """The constants in the order the Helium kernel reads them, one int8 and one int32 stream (the same bytes
        as the filter, shift, bias and multiplier arrays, permuted): per group g of 4 channels, ``weights_shift``
        holds each tap's 4 weights then the 4 shifts (4 * taps + 4 bytes from (4 * taps + 4) * g) and
        ``bias_multiplier`` the 4 folded biases then the 4 multipliers (8 words from 8 * g); the last C % 4
        channels follow the same way with r = C % 4 values per tap / field."""
        w = self.qkernel.astype(np.int64).reshape(-1, self.out_channels)  # (taps, C)
        shift = np.broadcast_to(np.asarray(self.requant.shift, dtype=np.int64), (self.out_channels,))
        multiplier = np.broadcast_to(np.asarray(self.requant.multiplier, dtype=np.int64), (self.out_channels,))
        bytes_, words = [], []
        for lo in range(0, self.out_channels, 4):
            hi = min(lo + 4, self.out_channels)
            bytes_ += [w[:, lo:hi].ravel(), shift[lo:hi]]
            words += [np.asarray(folded_bias, dtype=np.int64)[lo:hi], multiplier[lo:hi]]
        return {"weights_shift": np.concatenate(bytes_), "bias_multiplier": np.concatenate(words)}

    def mve_columns(self) -> dict:
        """Output columns grouped by which tap columns kx lie inside the image (Helium kernel): ``columns`` =
        [{"x0", "x1", "valid": [kx...], "base": the middle valid kx}] in order (base 0 if none is valid): the
        kernel addresses tap column kx at (kx - base) * dilation * C bytes from column base, which keeps the
        offsets within a load's immediate range for small kernels.  ``pad_columns``: tap columns a padding row
        must span, (max valid kx - min valid kx) * dilation + 1 pixels."""
        (_, kw), (_, sw), (_, dw), (_, pl) = self.kernel_size, self.strides, self.dilation, self.pads()
        in_w, out_w = self.input_shape[1], self.output_shape[1]
        columns, span = [], 1
        for x in range(out_w):
            valid = [kx for kx in range(kw) if 0 <= x * sw - pl + kx * dw < in_w]
            if columns and columns[-1]["valid"] == valid:
                columns[-1]["x1"] = x
                continue
            columns.append({"x0": x, "x1": x, "valid": valid, "base": valid[len(valid) // 2] if valid else 0})
            if valid:
                span = max(span, (valid[-1] - valid[0]) * dw + 1)
        # asm_taps: the Helium kernel's asm path reaches every tap with a 7-bit load offset and its row pointers
        # (at most 4, plus the weights pointer) fit the low registers that VLDRB.S32 addresses
        reach = max((max(abs(kx - c["base"]) for kx in c["valid"]) for c in columns if c["valid"]), default=0)
        kh = self.kernel_size[0]
        asm_taps = reach * dw * self.input_shape[2] <= 127 and kh <= 4 and 4 * kw * kh <= 124
        return {"columns": columns, "pad_columns": span, "asm_taps": asm_taps}
