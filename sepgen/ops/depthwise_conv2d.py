"""depthwise_conv2d: one kh x kw filter per input channel and multiplier (TFLite DEPTHWISE_CONV_2D).

Float kernel (kh, kw, in_channels, depth_multiplier) (Keras); int8 kernel (1, kh, kw, C * dm) (TFLite).
Output channel ``in_channel * depth_multiplier + m``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _depthwise_dsp as dsp
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
        """The DSP variant covers every depth multiplier, kernel, stride, dilation and padding; layers whose
        folded biases would not keep every partial sum within int32 use the portable kernel."""
        templates = super().instance_kernels(graph)
        if self.dsp_schedule(graph) is None:
            templates = {k: v for k, v in templates.items() if k != "cortexm_dsp"}
        return templates

    def dsp_schedule(self, graph) -> dict | None:
        """The DSP kernel's generation-time schedule (:mod:`sepgen.ops._depthwise_dsp`), or None.

        Filter rows outside the image are skipped and each row class gets the bias
        bias[c] + input_offset * sum of channel c's taps on its inside rows; a column outside the image
        reads the input zero point (x + input_offset = 0), so acc equals TFLite's sum over the taps inside
        the image.  Every partial sum is within |bias'| + sum|w| * 128 (checked here, else None).
        """
        offset = input_offset(graph, self)
        (kh, kw), (sh, sw), (dh, dw), (pt, pl) = self.kernel_size, self.strides, self.dilation, self.pads()
        (in_h, in_w, in_c), (out_h, out_w, _) = self.input_shape, self.output_shape
        segments, classes = dsp.y_segments(out_h, sh, dh, kh, pt, in_h)
        biases = dsp.class_biases(self.qbias, self.qkernel, offset, classes)  # (C, classes)
        w = np.abs(self.qkernel.astype(np.int64)).reshape(-1, self.out_channels).sum(axis=0)
        partial = int((np.abs(biases) + w[:, None] * 128).max())
        if partial >= LIMIT:
            return None
        runs = dsp.x_runs(out_w, sw, dw, kw, pl, in_w, in_c)
        multiplies = sorted({"smlad" if op["kind"] == "smlad" else "smla" + op["data"] + op["weight"]
                             for r in runs for o in r["body"]["outs"] for op in o["ops"]}
                            | {"smlab" + t["weight"] for r in runs for o in r["body"]["outs"] for t in o["init"]})
        return {"multiplies": multiplies, "filter": self.qkernel.reshape(kh * kw, -1).T, "segments": segments,
                "row_sums": sorted({ky for seg in segments for ky in seg["kys"]}), "runs": runs,
                "partial_bound": partial, "pad_value": -offset}

    def kernel_context(self, graph, variant):
        if variant != "cortexm_dsp":
            return {}
        return {**self.dsp_schedule(graph),
                "requant": right_shift_requant(self.requant, self.accumulator_bound(graph))}
