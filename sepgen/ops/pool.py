"""max_pool2d and avg_pool2d (TFLite MAX_POOL_2D / AVERAGE_POOL_2D).

Output quantization equals the input's (TFLite requires it).  Average pooling divides the sum of the
in-image taps by their count (padding excluded), rounding half away from zero (fixedpoint.rounded_divide).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import fixedpoint as fp
from ..ir import Layer, conv_output_size
from ._common import clamp_range, need_hwc, pair, windows


@dataclass(frozen=True, eq=False)
class PoolLayer(Layer):
    pool_size: tuple[int, int] = (2, 2)
    strides: tuple[int, int] = (2, 2)
    padding: str = "valid"
    activation: str = "none"

    @classmethod
    def infer_shape(cls, input_shapes, pool_size=(2, 2), strides=(2, 2), padding="valid", **_):
        h, w, c = need_hwc(tuple(input_shapes[0]), cls.op)
        (ph, pw), (sh, sw) = pair(pool_size, "pool_size"), pair(strides, "strides")
        if padding not in ("same", "valid"):
            raise ValueError(f"padding '{padding}' (supported: same, valid)")
        return conv_output_size(h, ph, sh, 1, padding)[0], conv_output_size(w, pw, sw, 1, padding)[0], c

    def pads(self) -> tuple[int, int]:
        (kh, kw), (h, w) = self.pool_size, self.input_shape[:2]
        return (conv_output_size(h, kh, self.strides[0], 1, self.padding)[1],
                conv_output_size(w, kw, self.strides[1], 1, self.padding)[1])

    def output_quant(self, input_quants, calibrated):
        return input_quants[0]

    def window(self, x: np.ndarray, fill) -> np.ndarray:
        return windows(x, self.pool_size, self.strides, (1, 1), self.pads(), self.output_shape[:2], fill)


@dataclass(frozen=True, eq=False)
class MaxPool2D(PoolLayer):
    """Max pooling; output quantization equals the input's (TFLite requirement)."""

    op = "max_pool2d"
    kernels = {"micropython": "micropython/layers/max_pool2d.py.j2"}

    def run_float(self, xs):
        return self.window(xs[0], -np.inf).max(axis=(4, 5)).astype(np.float32)

    def run_int8(self, graph, xs):
        lo, hi = clamp_range(graph, self)
        return fp.clamp(self.window(xs[0].astype(np.int64), -(1 << 40)).max(axis=(4, 5)), lo, hi).astype(np.int8)


@dataclass(frozen=True, eq=False)
class AvgPool2D(PoolLayer):
    """Average pooling over the valid (unpadded) part of each window, rounded half away from zero."""

    op = "avg_pool2d"
    kernels = {"micropython": "micropython/layers/avg_pool2d.py.j2"}

    def valid_counts(self) -> np.ndarray:
        """Number of in-image taps of each pooling window: (out_h, out_w)."""
        ones = np.ones((1,) + tuple(self.input_shape[:2]) + (1,), np.int64)
        return self.window(ones, 0).sum(axis=(3, 4, 5))[0]

    def run_float(self, xs):
        total = self.window(xs[0].astype(np.float64), 0.0).sum(axis=(4, 5))
        return (total / self.valid_counts()[None, :, :, None]).astype(np.float32)

    def run_int8(self, graph, xs):
        """TFLite reference: sum over in-image taps, divide by their count rounding half away from zero."""
        acc = self.window(xs[0].astype(np.int64), 0).sum(axis=(4, 5))
        avg = fp.rounded_divide(acc, self.valid_counts()[None, :, :, None])
        lo, hi = clamp_range(graph, self)
        return fp.clamp(avg, lo, hi).astype(np.int8)

    def accumulator_bound(self, graph) -> int:
        return self.pool_size[0] * self.pool_size[1] * 128
