"""conv2d: standard convolution, also the 1x1 pointwise convolution (TFLite CONV_2D).

Float kernel HWIO (Keras); int8 kernel OHWI (TFLite), per-output-channel scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import LIMIT, SpatialLayer, input_offset, right_shift_requant, windows


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
               "micropython": "micropython/layers/conv2d.py.j2"}

    def instance_kernels(self, graph):
        """The DSP variant is a pointwise kernel, the Helium variant takes any convolution (its windows copied
        into a patch of two windows on the stack, so at most MVE_MAX_WINDOW bytes each); other layers, and any
        whose folded bias would not keep the accumulator within int32, use the portable kernel."""
        templates = super().instance_kernels(graph)
        if self.pointwise_folded(graph) is None:
            templates = {k: v for k, v in templates.items() if k != "cortexm_dsp"}
        if self.pointwise_folded(graph, any_kernel=True) is None or (
                not self.is_pointwise and self.qkernel[0].size > MVE_MAX_WINDOW):
            templates = {k: v for k, v in templates.items() if k != "mve"}
        return templates

    def pointwise_folded(self, graph, any_kernel: bool = False) -> dict | None:
        """A 1x1 stride-1 layer with the input offset folded into the bias, or None (not pointwise, or a
        partial sum of the folded form could leave int32).

        bias'[c] = bias[c] + input_offset * sum_k w[c][k], so acc = bias'[c] + sum_k w[c][k] * x[k] is the
        same integer as TFLite's bias[c] + sum_k w[c][k] * (x[k] + input_offset); every partial sum (any
        order) is bounded by |bias'[c]| + sum_k |w[c][k]| * 128.  ``any_kernel``: the same for any kernel, k
        running over the whole window, whose taps outside the image must then read the input zero point.
        """
        if not (self.is_pointwise or any_kernel):
            return None
        offset = input_offset(graph, self)
        w = self.qkernel.astype(np.int64).reshape(self.out_channels, -1)
        folded = self.qbias.astype(np.int64) + offset * w.sum(axis=1)
        partial = int((np.abs(folded) + np.abs(w).sum(axis=1) * 128).max())
        if partial >= LIMIT:
            return None
        return {"folded_bias": folded, "partial_bound": partial}

    def kernel_context(self, graph, variant):
        if variant == "mve":  # left_shift: some channel's shift is a left shift (applied before the multiply)
            return {**self.pointwise_folded(graph, any_kernel=True), "filter": self.mve_filter_order(),
                    "left_shift": bool(np.max(self.requant.shift) > 0)}
        if variant != "cortexm_dsp":
            return {}
        folded = self.pointwise_folded(graph)
        return {**folded, "requant": right_shift_requant(self.requant, self.accumulator_bound(graph))}

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
