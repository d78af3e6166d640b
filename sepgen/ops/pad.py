"""pad: constant padding of an (H, W, C) tensor (Keras ZeroPadding2D, TFLite PAD/PADV2).

``paddings`` = ((top, bottom), (left, right), (front, back)); ``value`` is the int8 fill: the zero
point (real 0) unless a PADV2 constant says otherwise.  Output quantization equals the input's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..ir import Layer
from ._common import need_hwc


@dataclass(frozen=True, eq=False)
class Pad(Layer):
    """Constant padding of an (H, W, C) tensor; the float op pads with 0.0."""

    op = "pad"
    kernels = {"micropython": "micropython/layers/pad.py.j2"}
    paddings: tuple[tuple[int, int], ...] = ((0, 0), (0, 0), (0, 0))
    value: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "paddings", tuple(tuple(int(v) for v in p) for p in self.paddings))

    @classmethod
    def infer_shape(cls, input_shapes, paddings=((0, 0), (0, 0), (0, 0)), **_):
        shape = need_hwc(tuple(input_shapes[0]), "pad")
        pads = [tuple(int(v) for v in p) for p in paddings]
        if len(pads) != 3 or any(len(p) != 2 or min(p) < 0 for p in pads):
            raise ValueError(f"paddings {paddings}: 3 pairs of non-negative integers")
        return tuple(d + a + b for d, (a, b) in zip(shape, pads))

    def output_quant(self, input_quants, calibrated):
        return input_quants[0]

    def quantized(self, input_quants, output_quant):
        return dataclasses.replace(self, value=input_quants[0].zero_point)  # pads with real 0

    def run_float(self, xs):
        return np.pad(xs[0], ((0, 0),) + tuple(self.paddings), constant_values=0.0).astype(np.float32)

    def run_int8(self, graph, xs):
        return np.pad(xs[0], ((0, 0),) + tuple(self.paddings), constant_values=self.value).astype(np.int8)

    def check_integers(self, graph) -> None:
        if not -128 <= self.value <= 127:
            raise ValueError(f"pad value {self.value} outside int8")
