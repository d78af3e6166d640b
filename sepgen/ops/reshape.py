"""reshape: Flatten/Reshape — the same bytes under a new shape (NHWC order kept); no code is generated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Layer


@dataclass(frozen=True, eq=False)
class Reshape(Layer):
    """Flatten/Reshape: same bytes, new shape (NHWC order is preserved)."""

    op = "reshape"
    aliases_input = True

    @classmethod
    def infer_shape(cls, input_shapes, shape=None, **_):
        shape = tuple(int(d) for d in shape)
        if int(np.prod(shape)) != int(np.prod(input_shapes[0])) or len(shape) not in (1, 3):
            raise ValueError(f"{tuple(input_shapes[0])} -> {shape}")
        return shape

    def output_quant(self, input_quants, calibrated):
        return input_quants[0]

    def run_float(self, xs):
        return xs[0].reshape((xs[0].shape[0],) + tuple(self.output_shape))

    def run_int8(self, graph, xs):
        return xs[0].reshape((xs[0].shape[0],) + tuple(self.output_shape))
