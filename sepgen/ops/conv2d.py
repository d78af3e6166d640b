"""conv2d: standard convolution, also the 1x1 pointwise convolution (TFLite CONV_2D).

Float kernel HWIO (Keras); int8 kernel OHWI (TFLite), per-output-channel scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import SpatialLayer, windows


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
