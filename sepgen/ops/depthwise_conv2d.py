"""depthwise_conv2d: one kh x kw filter per input channel and multiplier (TFLite DEPTHWISE_CONV_2D).

Float kernel (kh, kw, in_channels, depth_multiplier) (Keras); int8 kernel (1, kh, kw, C * dm) (TFLite).
Output channel ``in_channel * depth_multiplier + m``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import SpatialLayer, windows


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
