"""depthwise_conv2d: one kh x kw filter per input channel and multiplier (TFLite DEPTHWISE_CONV_2D).

Float kernel (kh, kw, in_channels, depth_multiplier) (Keras); int8 kernel (1, kh, kw, C * dm) (TFLite).
Output channel ``in_channel * depth_multiplier + m``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import LIMIT, SpatialLayer, input_offset, right_shift_requant, windows


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
    kernels = {"cortexm_dsp": "layers/depthwise_conv2d.cortexm_dsp.c.j2",
               "micropython": "micropython/layers/depthwise_conv2d.py.j2"}

    def instance_kernels(self, graph):
        """The DSP variant covers depth multiplier 1 (any kernel, stride, dilation, padding); depth
        multipliers > 1, and layers whose folded bias would not keep every partial sum within int32, use the
        portable kernel."""
        templates = super().instance_kernels(graph)
        if self.depthwise_folded(graph) is None:
            templates = {k: v for k, v in templates.items() if k != "cortexm_dsp"}
        return templates

    def depthwise_folded(self, graph) -> dict | None:
        """Depth multiplier 1 with the input offset folded into the bias, or None.

        bias'[c] = bias[c] + input_offset * sum over all taps of w[c]; a tap outside the image then reads
        the input zero point (x + input_offset = 0), so acc = bias'[c] + sum_taps w * x~ equals TFLite's sum
        over the taps inside the image.  Every partial sum is within |bias'[c]| + sum|w[c]| * 128.
        Also gives the output rows/columns whose windows lie inside the image (the padding-free interior).
        """
        if self.depth_multiplier != 1:
            return None
        offset = input_offset(graph, self)
        w = self.qkernel.astype(np.int64).reshape(-1, self.out_channels)  # (taps, C)
        folded = self.qbias.astype(np.int64) + offset * w.sum(axis=0)
        partial = int((np.abs(folded) + np.abs(w).sum(axis=0) * 128).max())
        if partial >= LIMIT:
            return None
        (kh, kw), (sh, sw), (dh, dw), (pt, pl) = self.kernel_size, self.strides, self.dilation, self.pads()
        (in_h, in_w, _), (out_h, out_w, _) = self.input_shape, self.output_shape

        def inside(pad, stride, extent, size, outs):
            lo = -(-pad // stride)
            hi = (size - 1 + pad - extent) // stride
            return max(lo, 0), min(hi, outs - 1)

        y_lo, y_hi = inside(pt, sh, (kh - 1) * dh, in_h, out_h)
        x_lo, x_hi = inside(pl, sw, (kw - 1) * dw, in_w, out_w)
        zp = -offset
        return {"folded_bias": folded, "partial_bound": partial, "pad_value": zp,
                "pad_word": int(np.array([zp & 0xFF] * 4, dtype=np.uint8).view("<i4")[0]),
                "interior": (y_lo, y_hi, x_lo, x_hi),
                "has_interior": y_lo <= y_hi and x_lo <= x_hi,
                "has_border": not (y_lo == 0 and y_hi == out_h - 1 and x_lo == 0 and x_hi == out_w - 1)}

    def kernel_context(self, graph, variant):
        if variant != "cortexm_dsp":
            return {}
        return {**self.depthwise_folded(graph),
                "requant": right_shift_requant(self.requant, self.accumulator_bound(graph))}
