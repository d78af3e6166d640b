"""conv2d: standard convolution, also the 1x1 pointwise convolution (TFLite CONV_2D).

Float kernel HWIO (Keras); int8 kernel OHWI (TFLite), per-output-channel scales.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..ir import Graph
from ._common import (SpatialLayer, clamp_range, fold_input_offset, host_floor, host_requant, input_offset,
                      right_shift_requant, windows)


#: Largest window (kh * kw * in_channels bytes) the Helium kernel copies into its stack patch (two of them).
MVE_MAX_WINDOW = 1024


@dataclass(frozen=True, eq=False)
class Conv2D(SpatialLayer):
    """Standard convolution (also the 1x1 pointwise convolution); kernel HWIO."""

    op = "conv2d"

    @staticmethod
    def output_channels(kernel_shape: tuple[int, ...]) -> int:
        return int(kernel_shape[3])  # HWIO

    @property
    def is_pointwise(self) -> bool:
        return self.kernel_size == (1, 1) and self.strides == (1, 1)

    def output_channels_first(self, kernel):
        return kernel.transpose(3, 0, 1, 2)  # OHWI

    def keras_int_kernel(self):
        return self.qkernel.astype(np.int64).transpose(1, 2, 3, 0)

    def convolve(self, x, kernel):
        win = windows(x, self.kernel_size, self.strides, self.dilation, self.pads(), self.output_shape[:2], 0)
        return np.einsum("nyxcij,ijco->nyxo", win, kernel)

    # ----------------------------------------------------------- kernel variants
    kernels = {"cortexm_dsp": "layers/conv2d.cortexm_dsp.c.j2", "mve": "layers/conv2d.mve.c.j2",
               "host": "layers/conv2d.host.c.j2", "micropython": "micropython/layers/conv2d.py.j2"}
    #: inside a streamed chain the same host, DSP and Helium templates render a row kernel (ctx.rows)
    row_kernels = {"host": "layers/conv2d.host.c.j2", "cortexm_dsp": "layers/conv2d.cortexm_dsp.c.j2",
                   "mve": "layers/conv2d.mve.c.j2"}

    def instance_kernels(self, graph: Graph) -> dict[str, str]:
        """The DSP variant serves every conv2d whose doubled accumulator stays within int32 and whose staged
        patch fits the stack budget (:meth:`dsp_plan`); the Helium variant any convolution whose folded bias
        keeps the accumulator within int32 (:meth:`mve_folded`; a window is copied into a patch of two windows
        on the stack, so at most MVE_MAX_WINDOW bytes each); other layers use the portable kernel."""
        templates = super().instance_kernels(graph)
        if self.dsp_plan(graph) is None:
            templates = {k: v for k, v in templates.items() if k != "cortexm_dsp"}
        if self.mve_folded(graph) is None or (not self.is_pointwise and self.qkernel[0].size > MVE_MAX_WINDOW):
            templates = {k: v for k, v in templates.items() if k != "mve"}
        if self.host_plan(graph) is None:
            templates = {k: v for k, v in templates.items() if k != "host"}
        return templates

    def dsp_plan(self, graph: Graph, per_row: bool = False) -> dict | None:
        """How the DSP kernel runs this layer, or None (then the portable kernel does); ``per_row``: as a row
        kernel (blocks of pixels within one output row, :attr:`row_kernels`).

        The kernel is a matrix product: each output pixel's receptive field (kh x kw x C_in int8 values, taps
        outside the image at the input zero point) is staged on the stack as int16 values 2 * (x + input_offset)
        (0 for padding), two per word in SXTB16 order (bytes 0, 2 then 1, 3 of every 4); then each filter row
        (4 weights per load, SXTB16) meets ``pixels`` staged patches at once with SMLAD, accumulating 2 * acc
        from 2 * bias, and is requantized from 2 * acc (``right_shift_requant``).  Needs |2 acc| < 2^31 (every
        partial sum is within the final bound, as no term is offset, and padding weights are 0) and a stage of
        at most ``STAGE_BYTES``.

        Patch order: a pointwise layer's and a windowed layer's whose kernel rows (kw x C_in values) are a
        multiple of 4 long (``rows_aligned``) is OHWI, groups of 4 then ``tail`` single values.  Otherwise
        (``split_rows``) each kernel row's first 4 * ``row_groups`` values come first, row by row, then the
        ``left`` = row % 4 last values of every row, row by row, packed into ``left_groups`` groups of 4 whose
        unused places have weight 0; ``filter`` is the int8 filter in that order (C_out rows of 4 * groups), so
        an interior pixel is staged straight from its kh input rows.
        """
        requant = right_shift_requant(self.requant, self.accumulator_bound(graph))
        (kh, kw), (_, _, c_in) = self.kernel_size, self.input_shape
        out_h, out_w, _ = self.output_shape
        patch = kh * kw * c_in
        groups, tail = divmod(patch, 4)
        if requant is None or groups == 0:  # fewer than 4 MACs per output: nothing to pair up
            return None
        row = kw * c_in
        pointwise = self.kernel_size == (1, 1) and self.strides == (1, 1) and self.pads() == (0, 0)
        rows_aligned = not pointwise and row % 4 == 0
        split_rows = not pointwise and not rows_aligned
        row_groups, left = divmod(row, 4)
        left_groups = -(-kh * left // 4)
        filt = self.qkernel.reshape(self.out_channels, -1)
        if split_rows:
            groups, tail = kh * row_groups + left_groups, 0
            rows = self.qkernel.reshape(self.out_channels, kh, row)
            filt = np.concatenate([rows[:, :, :4 * row_groups].reshape(self.out_channels, -1),
                                   rows[:, :, 4 * row_groups:].reshape(self.out_channels, -1),
                                   np.zeros((self.out_channels, 4 * left_groups - kh * left), filt.dtype)], axis=1)
        words = 2 * groups + tail
        # the int8 patch (or one kernel row) the border path builds before staging it
        int8_bytes = 0 if pointwise else (row if rows_aligned else patch)
        count = out_w if per_row else out_h * out_w
        unroll = groups if groups <= FULL_UNROLL else 8  # then groups % 8 unrolled after the loop
        pixels = _pixels_per_block(count, (STAGE_BYTES - int8_bytes) // (4 * words), words, groups, unroll)
        if pixels == 0:
            return None
        offset = input_offset(graph, self)
        # the block functions depend on these only (not on the constants): layers that agree share them
        code = (groups, tail, words, self.out_channels, unroll, self.bias is None, requant["uniform"],
                graph.tensors[self.output].quant.zero_point, clamp_range(graph, self))
        block_key = _digest(code)
        driver = (block_key, count, pixels, patch, offset)  # the whole pointwise layer, constants aside
        return {"requant": requant, "offset": offset,
                "offset_pair": int(np.array([offset, offset], "<i2").view("<i4")[0]),  # two int16 halves
                "patch": patch, "groups": groups, "tail": tail, "words": words, "pointwise": pointwise,
                "rows_aligned": rows_aligned, "split_rows": split_rows, "row_groups": row_groups, "left": left,
                "left_groups": left_groups, "filter": filt.ravel(),
                "pixels": pixels, "rest": count % pixels, "unroll": unroll,
                "stage_bytes": 4 * words * pixels + int8_bytes,  # stack bytes
                "bias2": None if self.bias is None else 2 * self.qbias.astype(np.int64),
                "block_key": block_key, "driver_key": _digest(driver)}

    def mve_folded(self, graph: Graph) -> dict | None:
        """The Helium kernel's bias with the input offset folded in, or None (a partial sum of the folded form
        could leave int32).

        bias'[c] = bias[c] + input_offset * sum_k w[c][k] over the whole window, so acc = bias'[c] +
        sum_k w[c][k] * x[k] is the same integer as TFLite's bias[c] + sum_k w[c][k] * (x[k] + input_offset)
        when taps outside the image read the input zero point; every partial sum (any order) is bounded by
        |bias'[c]| + sum_k |w[c][k]| * 128.
        """
        return fold_input_offset(self.qbias, self.qkernel.reshape(self.out_channels, -1), input_offset(graph, self))

    def host_plan(self, graph: Graph) -> dict | None:
        """The host kernel's constants (``layers/conv2d.host.c.j2``), or None (then the portable kernel runs).

        Each output pixel's receptive field is staged as int16 (taps outside the image at the input zero point)
        and padded with zeros to ``padded`` = a multiple of 16 values (GCC -O2 vectorizes only loops without a
        remainder; 16 int8 weights per vector), at most HOST_MAX_PATCH (stack bytes: 2 per
        value); ``filter`` holds the OHWI rows padded likewise (zero weights add nothing).  The input offset is
        folded into the bias (:meth:`mve_folded`, which proves every partial sum within int32)."""
        folded = self.mve_folded(graph)
        patch = int(self.qkernel[0].size)
        padded = -(-patch // 16) * 16
        if folded is None or padded > HOST_MAX_PATCH:
            return None
        rows = np.zeros((self.out_channels, padded), dtype=np.int64)
        rows[:, :patch] = self.qkernel.reshape(self.out_channels, patch)
        return {**folded, "patch": patch, "padded": padded, "filter": rows,
                "requant": host_requant(self.requant, self.accumulator_bound(graph), *host_floor(graph, self))}

    def kernel_context(self, graph: Graph, variant: str) -> dict:
        if variant == "host":
            return self.host_plan(graph)
        if variant == "mve":  # left_shift: some channel's shift is a left shift (applied before the multiply)
            return {**self.mve_folded(graph), "filter": self.mve_filter_order(),
                    "left_shift": bool(np.max(self.requant.shift) > 0)}
        if variant != "cortexm_dsp":
            return {}
        return self.dsp_plan(graph)

    def row_kernel_context(self, graph: Graph, variant: str) -> dict:
        if variant == "cortexm_dsp":
            return self.dsp_plan(graph, per_row=True)
        return self.kernel_context(graph, variant)

    def stack_bytes(self, graph, variant, rows=False):
        """The DSP kernel's staged patches (a row kernel's blocks lie in one output row); the Helium kernel's patch
        of two windows (not for a pointwise layer; the same as a row kernel)."""
        if variant == "cortexm_dsp":
            return int(self.dsp_plan(graph, per_row=rows)["stage_bytes"])
        if variant == "mve":
            return 0 if self.is_pointwise else 2 * self.kernel_size[0] * self.kernel_size[1] * self.input_shape[2]
        return 0

    def mve_filter_order(self) -> np.ndarray:
        """The OHWI filter as rows of n = kh * kw * in in the order the Helium kernel reads it: per group of 4
        output channels (the last may have fewer rows), chunk by chunk of 16 (the last n % 16 wide), each row's
        chunk in turn.  A group starts at 4g * n; its row c of chunk k is at 16 * rows * k + width * c."""
        w = self.qkernel.reshape(self.out_channels, -1)
        parts = []
        for lo in range(0, w.shape[0], 4):
            group = w[lo:lo + 4]
            parts += [group[:, k:k + 16].ravel() for k in range(0, w.shape[1], 16)]
        return np.concatenate(parts)


#: Largest staged receptive field of the host kernel, in int16 values (2 bytes each on the stack).
HOST_MAX_PATCH = 4096
#: Stack bytes the conv2d DSP kernel may use for its staged patches (larger patches: the portable kernel).
STAGE_BYTES = 2048
#: Filter rows of at most this many groups of 4 weights are fully unrolled in the DSP kernel.
FULL_UNROLL = 16
#: Output pixels per block of the DSP kernel at most (5 accumulators + 2 weight and 2 input registers + 2
#: pointers + a counter fit the 13 usable registers of a Cortex-M core).
MAX_PIXELS = 5


def _digest(code: tuple) -> str:
    """A name suffix for the C functions that layers with equal ``code`` share (64 bits of SHA-256: distinct
    codes never meet in practice)."""
    return hashlib.sha256(repr(code).encode()).hexdigest()[:16]


def _pixels_per_block(count: int, fit: int, words: int, groups: int, unrolled: int) -> int:
    """Output pixels staged and computed together: at most MAX_PIXELS and ``fit``; of the two largest choices the
    one of fewer estimated instructions (:func:`_block_cost` over the blocks of ``count`` pixels), a divisor of
    ``count`` (no remainder block) on a tie."""
    top = min(MAX_PIXELS, fit, count)
    if top <= 0:
        return 0

    def cost(p: int) -> int:
        return (count // p) * _block_cost(p, words, groups, unrolled) + (
            _block_cost(count % p, words, groups, unrolled) if count % p else 0)

    return min((p for p in (top, top - 1) if p >= 1), key=lambda p: (cost(p), count % p != 0))


def _block_cost(pixels: int, words: int, groups: int, unrolled: int) -> int:
    """Estimated instructions of one output channel of a block: the filter row's groups widened (LDR, 2 SXTB16
    each) and ~10 to start and requantize the channel, then per pixel an LDRD and 2 SMLAD per group and 4 to
    requantize; a pixel whose staged words lie beyond one LDRD's reach (index > 254 in a run of ``unrolled``
    groups) loads each pair with two LDRs."""
    far = sum(1 for p in range(pixels) if p * words + 2 * (unrolled - 1) > 254)
    return 3 * groups + 10 + pixels * (3 * groups + 4) + far * groups
